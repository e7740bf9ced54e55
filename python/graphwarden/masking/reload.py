"""The operator's masking catalogue, reloaded while the gateway runs.

A worker reads the catalogue file again on SIGHUP (which `graphwarden serve` passes on to every
worker) and when the file's modification time changes (checked every `masking.reload_poll_s`).
The new catalogue is parsed and compiled on the watcher's own thread (the engine's compilation
releases the GIL, so requests go on meanwhile) and then swapped into the running `Masker` in
place (`Masker.adopt`): everything holding that object masks with the new set from its next
call, and streams already open finish with the engine they began with.

A catalogue that cannot be read, parsed or compiled is rejected: the set in force stays, the
error (naming the entry at fault) is logged, and the file is not tried again until it changes
or SIGHUP asks. Either way `on_result` hears of it, which the gateway turns into an audit record
(`masking_reload`) carrying the BLAKE3 digest of the file's bytes, so the trail shows which
masking rules were in force when. A new catalogue is recorded before it is swapped in; when the
record cannot be written (the audit log is unavailable), the catalogue in force stays and the
file is tried again at the next poll.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphwarden import _native
from graphwarden.errors import FAILURES
from graphwarden.masking import Masker
from graphwarden.ops import get_logger

log = get_logger("masking")


class CatalogueWatcher:
    """Reloads `masker` from the catalogue file at `path` (see the module's documentation)."""

    def __init__(self, masker: Masker, path: str, poll_s: float,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.masker = masker
        self.path = Path(path)
        self.poll_s = poll_s
        self.on_result = on_result
        self.reloads = 0
        self.last_error: str | None = None
        self._mtime = self._stat()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one reload at a time (the thread's, or a direct call)

    def _stat(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def request_reload(self) -> None:
        """Reload as soon as the watcher's thread wakes (SIGHUP: safe in a signal handler)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="graphwarden-catalogue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stopping.is_set():
            asked = self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            if asked or self._stat() != self._mtime:
                try:
                    self.reload()
                except FAILURES:  # never let the thread die: the next change is tried again
                    log.exception("masking catalogue reload failed unexpectedly")

    def reload(self) -> bool:
        """Reads, parses and compiles the file; swaps it in when all went well. False (the set
        in force kept) when it was rejected."""
        with self._lock:
            mtime = self._stat()
            try:
                fresh = Masker.from_file(self.path, key=self.masker._key)
            except ValueError as exc:
                return self._rejected(self._digest_of_file(), mtime, str(exc))
            except _native.PanicException as exc:  # a bug in the engine's compiler: still rejected
                return self._rejected(self._digest_of_file(), mtime, f"{self.path}: the masking engine failed: {exc}")
            digest = fresh.digest  # of the bytes that were compiled
            previous = self.masker.digest
            # recorded first: a catalogue is never in force without the record of when it came in
            if not self._report({"result": "loaded", "file": str(self.path), "digest": digest, "previous": previous,
                                 "entries": [e.id for e in fresh.entries]}):
                self._mtime = None  # tried again at the next poll
                self.last_error = "the reload could not be recorded"
                log.error("masking catalogue reload not recorded; keeping the catalogue in force until it can be",
                          extra={"fields": {"file": str(self.path), "in_force": previous}})
                return False
            self.masker.adopt(fresh)
            self._mtime = mtime
            self.reloads += 1
            self.last_error = None
            log.info("masking catalogue loaded", extra={"fields": {
                "file": str(self.path), "digest": digest, "previous": previous, "entries": len(fresh.entries)}})
            return True

    def _digest_of_file(self) -> str | None:
        try:
            return _native.blake3_hex(self.path.read_bytes())
        except OSError:
            return None

    def _rejected(self, digest: str | None, mtime: int | None, error: str) -> bool:
        self._mtime = mtime  # not tried again until the file changes (or SIGHUP)
        self.last_error = error
        log.error("masking catalogue reload rejected; keeping the catalogue in force",
                  extra={"fields": {"file": str(self.path), "error": error, "in_force": self.masker.digest}})
        self._report({"result": "rejected", "file": str(self.path), "digest": digest, "error": error,
                      "in_force": self.masker.digest})
        return False

    def _report(self, result: dict[str, Any]) -> bool:
        """Tells `on_result`; False when it failed (the audit log could not take the record)."""
        if self.on_result is None:
            return True
        try:
            self.on_result(result)
        except Exception:
            log.exception("masking catalogue reload could not be recorded")
            return False
        return True


__all__ = ["CatalogueWatcher"]
