"""`AuditLog`: the Python face of the native chain writer.

Theory of operation
-------------------
`append` encodes the body canonically (docs/AUDIT_FORMAT.md 4.2) and hands it to the native
writer, which assigns the seq, chains the hash and queues the frame; a Rust thread does group
commit (one write + one fdatasync for everything queued meanwhile). `append` never blocks on
disk.

Durability is observed through an eventfd the writer signals after every sync or health change.
`wait_durable(seq)` registers a future and, once per event loop, a reader on that fd, so an
asyncio (uvloop) loop waits for durability without blocking and without a thread per request.
In strict mode the gateway releases a response only after `await log.wait_durable(seq)`.

Fail closed: when the writer cannot write, `append` raises `AuditUnavailable` (a 503
`GatewayError`) and pending waiters fail with it; the writer retries in the background and
`healthy()` turns true again by itself once writing works.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import orjson

from graphwarden.audit._bind import NativeAuditError, NativeAuditUnavailable, NativeWriter, native
from graphwarden.errors import GatewayError

Durability = Literal["strict", "batch"]

#: Default sizes, chosen so a checkpoint is signed about every 10 000 records / 10 s under load
#: and within a second of going idle.
DEFAULT_CHECKPOINT_EVERY = 10_000
DEFAULT_CHECKPOINT_INTERVAL_S = 10.0
DEFAULT_IDLE_CHECKPOINT_S = 1.0
#: Batch mode loss bound on power loss / kernel crash: records written in the last window (plus
#: one fdatasync). A crash of the process alone loses nothing already handed to the OS.
DEFAULT_BATCH_WINDOW_S = 0.05
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024


class AuditUnavailable(GatewayError):
    """The audit trail cannot be written: the gateway refuses requests until it can (503)."""

    status = 503
    code = "audit_unavailable"


class AuditError(Exception):
    """The audit log cannot be opened (bad key file, chain in use, bad directory...)."""


def canonical_body(body: Mapping[str, Any]) -> bytes:
    """The canonical JSON encoding of a record body (sorted keys, no whitespace, UTF-8)."""
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(f"audit record body is not JSON-serialisable: {exc}") from None


def default_chain_id(worker_index: int = 0, prefix: str | None = None) -> str:
    """A stable chain id for a worker: `<prefix or hostname>-w<index>`, restricted to the id alphabet."""
    base = prefix if prefix is not None else socket.gethostname()
    base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in base).lstrip(".")
    base = base[:56] or "gw"
    return f"{base}-w{worker_index}"


class AuditLog:
    """One chain of the audit log, written by this process."""

    def __init__(self, writer: NativeWriter) -> None:
        self._writer = writer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tick = 0
        self._closed = False

    @classmethod
    def open(
        cls,
        dir: str | os.PathLike[str],
        *,
        key_file: str | os.PathLike[str] | None = None,
        chain: str | None = None,
        mode: Durability = "batch",
        anchor_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S,
        idle_checkpoint_s: float = DEFAULT_IDLE_CHECKPOINT_S,
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        retention_s: float | None = None,
    ) -> AuditLog:
        """Open (or create) chain `chain` in `dir`, recovering a torn tail if the last run crashed.

        `key_file` defaults to `<dir>/../keys/audit-ed25519.key` (created 0600 if missing).
        """
        d = Path(dir)
        key = Path(key_file) if key_file is not None else d.parent / "keys" / "audit-ed25519.key"
        try:
            writer = native.AuditWriter(
                str(d),
                chain if chain is not None else default_chain_id(),
                str(key),
                mode,
                batch_window_s,
                checkpoint_every,
                checkpoint_interval_s,
                idle_checkpoint_s,
                segment_max_bytes,
                None if anchor_dir is None else str(anchor_dir),
                retention_s,
            )
        except NativeAuditError as exc:
            raise AuditError(str(exc)) from None
        return cls(writer)

    # -- writing ---------------------------------------------------------------------------

    @property
    def append_dict(self) -> Callable[[str, dict[str, Any], bool], int]:
        """`append(kind, body, stamp=stamp)` for a plain dict body, as the native writer's own
        method (no Python frame per record, for the request path): TypeError, with nothing
        appended, for a body it does not encode natively (then use `append`); the native
        AuditUnavailable (`graphwarden._native.AuditUnavailable`) when the log cannot write."""
        return cast("Callable[[str, dict[str, Any], bool], int]", self._writer.append_obj)

    def append(self, kind: str, body: Mapping[str, Any] | bytes, *, stamp: bool = False) -> int:
        """Append a record and return its seq. `body` is a JSON object (encoded canonically) or
        bytes already in canonical form; `stamp`: a dict body without `"ts"` gets one (now).
        Raises `AuditUnavailable` when the log cannot write.

        Plain dicts are encoded natively (no bytes object in between, `ts` formatted in Rust);
        what the native encoder does not take (a subclass, a dataclass...) goes through orjson,
        with the same canonical result (tests/audit/test_canonical.py)."""
        try:
            if type(body) is dict:
                try:
                    return self._writer.append_obj(kind, body, stamp)
                except TypeError:
                    pass  # not natively encoded: orjson below encodes it or says why not
            if not isinstance(body, bytes):
                if stamp and "ts" not in body:
                    body = {**body, "ts": native.now_iso()}
                body = canonical_body(body)
            return self._writer.append(kind, body)
        except NativeAuditUnavailable as exc:
            raise AuditUnavailable(f"audit log unavailable: {exc}") from None

    # -- durability ------------------------------------------------------------------------

    @property
    def durability(self) -> Durability:
        return "strict" if self._writer.durability == "strict" else "batch"

    @property
    def durable_count(self) -> int:
        """Every seq below this is on disk and synced."""
        return self._writer.durable_count()

    def is_durable(self, seq: int) -> bool:
        return self._writer.durable_count() > seq

    def wait_durable_blocking(self, seq: int, timeout_s: float | None = None) -> bool:
        """Block (GIL released) until `seq` is durable; False on timeout. Not for the event loop."""
        try:
            return self._writer.wait_durable(seq, timeout_s)
        except NativeAuditUnavailable as exc:
            raise AuditUnavailable(f"audit log unavailable: {exc}") from None

    def sync(self, timeout_s: float | None = None) -> bool:
        """Block (GIL released) until every record appended so far is durable; False on
        timeout. For tools and tests that read the files next; not for the event loop."""
        appended = self._writer.appended_count()
        return appended == 0 or self.wait_durable_blocking(appended - 1, timeout_s)

    async def wait_durable(self, seq: int) -> None:
        """Wait on the running event loop until record `seq` is durable.

        Raises `AuditUnavailable` if the log fails (or is closed) before that."""
        if self._writer.durable_count() > seq:
            return
        self._check_failed()
        self._writer.want(seq)  # strict: sync it now (records nobody waits for wait for a sync)
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            loop.add_reader(self._writer.event_fd(), self._on_event)
        elif self._loop is not loop:
            raise RuntimeError("AuditLog.wait_durable is bound to another event loop")
        fut: asyncio.Future[None] = loop.create_future()
        self._tick += 1
        heapq.heappush(self._waiters, (seq, self._tick, fut))
        self._on_event()  # it may have become durable in between
        await fut

    async def append_durable(self, kind: str, body: Mapping[str, Any] | bytes) -> int:
        """Append, then wait until the record is durable."""
        seq = self.append(kind, body)
        await self.wait_durable(seq)
        return seq

    def _check_failed(self) -> None:
        err = self._writer.error()
        if err is not None:
            raise AuditUnavailable(f"audit log unavailable: {err}")
        if self._closed:
            raise AuditUnavailable("audit log unavailable: it was closed")

    def _on_event(self) -> None:
        try:
            os.read(self._writer.event_fd(), 8)
        except (BlockingIOError, OSError):
            pass
        durable = self._writer.durable_count()
        waiters = self._waiters
        while waiters and waiters[0][0] < durable:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)
        if waiters:
            err = self._writer.error()
            if err is not None or self._closed:
                exc = AuditUnavailable(f"audit log unavailable: {err or 'it was closed'}")
                for _, _, fut in waiters:
                    if not fut.done():
                        fut.set_exception(exc)
                waiters.clear()

    # -- health and lifecycle --------------------------------------------------------------

    def healthy(self) -> bool:
        """False while records cannot be written (appends raise `AuditUnavailable`)."""
        return self._writer.error() is None and not self._closed

    def last_error(self) -> str | None:
        return self._writer.error()

    def readiness_problem(self) -> str | None:
        """For `Gateway.readiness_checks["audit"]`: None when writable, else the reason."""
        if self._closed:
            return "audit log closed"
        err = self._writer.error()
        return None if err is None else f"audit log unavailable: {err}"

    @property
    def chain(self) -> str:
        return self._writer.chain

    @property
    def public_key(self) -> str:
        """Hex Ed25519 public key that signs this chain's checkpoints."""
        return self._writer.public_key

    @property
    def recovered(self) -> str | None:
        """JSON body of the audit.recovery record written on open after a crash, else None."""
        return self._writer.recovered

    def stats(self) -> dict[str, int]:
        checkpoints, segments = self._writer.counters()
        return {
            "appended": self._writer.appended_count(),
            "durable": self._writer.durable_count(),
            "checkpoints_written": checkpoints,
            "segments_created": segments,
        }

    def prune(self, older_than_s: float) -> int:
        """Remove sealed segments older than this through a signed pruning checkpoint."""
        try:
            return self._writer.prune(older_than_s)
        except NativeAuditError as exc:
            raise AuditError(str(exc)) from None

    def close(self) -> None:
        """Flush, write a signed close checkpoint, stop the writer thread. Idempotent."""
        if self._closed:
            return
        try:
            self._writer.close()
        except NativeAuditError as exc:
            raise AuditError(str(exc)) from None
        finally:
            self._closed = True
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._writer.event_fd())
                self._on_event()
            self._loop = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
