"""Reloading the operator's masking catalogue while the gateway runs (`graphwarden.masking.reload`):
a good file is swapped in for every holder of the masker, a bad one is rejected with the set in
force kept, and both are reported with the BLAKE3 digest of the file's bytes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import blake3
import pytest

from graphwarden.assembly import Assembly
from graphwarden.config import convert_config
from graphwarden.masking import Masker
from graphwarden.masking.reload import CatalogueWatcher

EMPLOYEE = '[[entries]]\nid = "employee_id"\nentity = "EMPLOYEE_ID"\npatterns = [\'\\bEMP-\\d{6}\\b\']\nmax_len = 10\n'
BAD = '[[entries]]\nid = "broken_entry"\nentity = "BROKEN"\npatterns = [\'(unclosed\']\nmax_len = 10\n'
TEXT = b"employee EMP-123456 wrote from jane.doe@example.com"


def _digest(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


def _write(path: Path, text: str) -> None:
    """Writes `text` and moves the mtime on (a file rewritten within the clock's tick keeps it)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st = path.stat()
    if st.st_mtime_ns <= before:
        os.utime(path, ns=(st.st_atime_ns, before + 1_000_000))


def _wait(pred: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture()
def catalogue(tmp_path: Path) -> Path:
    p = tmp_path / "masking.toml"
    p.write_text("version = 1\n")
    return p


def test_a_good_catalogue_is_swapped_in_and_reported_with_its_digest(catalogue: Path) -> None:
    masker = Masker.from_file(catalogue)
    assert masker.digest == _digest(catalogue) and masker.source == str(catalogue)
    first = masker.digest
    mask, results = masker.mask, []
    watcher = CatalogueWatcher(masker, str(catalogue), 3600, on_result=results.append)
    assert masker.mask(TEXT) == b"employee EMP-123456 wrote from [EMAIL]"
    _write(catalogue, EMPLOYEE)
    assert watcher.reload()
    # the same object masks with the new set; a method taken before still masks with the old
    assert masker.mask(TEXT) == b"employee [EMPLOYEE_ID] wrote from [EMAIL]"
    assert mask(TEXT) == b"employee EMP-123456 wrote from [EMAIL]"
    assert masker.digest == _digest(catalogue) != first
    assert [e.id for e in masker.entries][-1] == "employee_id"
    [r] = results
    assert r["result"] == "loaded" and r["digest"] == _digest(catalogue) and r["previous"] == first
    assert r["file"] == str(catalogue) and "employee_id" in r["entries"]


def test_a_bad_catalogue_is_rejected_and_the_set_in_force_kept(catalogue: Path) -> None:
    _write(catalogue, EMPLOYEE)
    masker = Masker.from_file(catalogue)
    in_force, results = masker.digest, []
    watcher = CatalogueWatcher(masker, str(catalogue), 3600, on_result=results.append)
    _write(catalogue, EMPLOYEE + BAD)
    assert not watcher.reload()
    assert masker.mask(TEXT) == b"employee [EMPLOYEE_ID] wrote from [EMAIL]"
    assert masker.digest == in_force
    assert watcher.last_error is not None and "broken_entry" in watcher.last_error
    [r] = results
    assert r["result"] == "rejected" and r["digest"] == _digest(catalogue) and r["in_force"] == in_force
    assert "broken_entry" in r["error"] and "does not compile" in r["error"] and "unclosed group" in r["error"]
    # not TOML, not UTF-8, gone: each rejected the same way
    for bad in (b"[[entries]\n", b"version = 1\n# \xff\xfe\n"):
        catalogue.write_bytes(bad)
        assert not watcher.reload()
    assert "not valid TOML" in results[1]["error"] and "not UTF-8" in results[2]["error"]
    catalogue.unlink()
    assert not watcher.reload() and results[3]["digest"] is None and "cannot read" in results[3]["error"]
    assert masker.mask(TEXT) == b"employee [EMPLOYEE_ID] wrote from [EMAIL]"


def test_the_file_is_watched_and_a_rejected_one_not_retried_until_it_changes(catalogue: Path) -> None:
    masker = Masker.from_file(catalogue)
    results: list[dict[str, Any]] = []
    watcher = CatalogueWatcher(masker, str(catalogue), 0.02, on_result=results.append)
    watcher.start()
    try:
        _write(catalogue, EMPLOYEE + BAD)
        _wait(lambda: len(results) == 1)
        time.sleep(0.2)  # ten polls: the rejected file is not read again
        assert len(results) == 1 and results[0]["result"] == "rejected"
        _write(catalogue, EMPLOYEE)
        # the record comes first, then the catalogue is put in force (`reloads` counts those)
        _wait(lambda: len(results) == 2 and watcher.reloads == 1)
        assert results[1]["result"] == "loaded"
        assert masker.mask(TEXT) == b"employee [EMPLOYEE_ID] wrote from [EMAIL]"
    finally:
        watcher.stop()
    assert watcher._thread is not None and not watcher._thread.is_alive()


def test_streams_opened_before_a_reload_finish_with_their_catalogue(catalogue: Path) -> None:
    masker = Masker.from_file(catalogue)
    before = masker.stream()
    _write(catalogue, EMPLOYEE)
    assert CatalogueWatcher(masker, str(catalogue), 3600).reload()
    after = masker.stream()
    assert before.feed(TEXT) + before.finish() == b"employee EMP-123456 wrote from [EMAIL]"
    assert after.feed(TEXT) + after.finish() == b"employee [EMPLOYEE_ID] wrote from [EMAIL]"


def test_keyed_hash_tokens_survive_a_reload_without_a_configured_key(catalogue: Path) -> None:
    _write(catalogue, '[[entries]]\nid = "email"\naction = "hash"\n')
    masker = Masker.from_file(catalogue)
    token = masker.mask(b"jane.doe@example.com")
    assert token.startswith(b"[EMAIL:")
    _write(catalogue, '[[entries]]\nid = "email"\naction = "hash"\n' + EMPLOYEE)
    assert CatalogueWatcher(masker, str(catalogue), 3600).reload()
    assert masker.mask(b"jane.doe@example.com") == token


class _Gateway:
    def __init__(self) -> None:
        self.on_close: list[Any] = []


class _Audit:
    chain = "gw-test"

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def append(self, kind: str, body: dict[str, Any]) -> int:
        self.records.append((kind, body))
        return len(self.records)


def test_sighup_reloads_the_catalogue_and_the_reload_goes_on_the_record(catalogue: Path, tmp_path: Path) -> None:
    assert threading.current_thread() is threading.main_thread()
    config = convert_config({"upstream": {"url": "http://127.0.0.1:9"}, "state": {"dir": str(tmp_path / "state")},
                             "masking": {"catalogue": str(catalogue), "reload_poll_s": 3600}})
    assembly = Assembly(config)
    assembly.masker = assembly.build_masker()
    audit = _Audit()
    assembly.audit = audit
    earlier: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signo, _frame: earlier.append(signo))  # e.g. the policy's
    gateway = _Gateway()
    try:
        assembly._watch_catalogue(gateway, str(catalogue), 3600)
        _write(catalogue, EMPLOYEE)
        os.kill(os.getpid(), signal.SIGHUP)
        _wait(lambda: len(audit.records) == 1)
        assert earlier == [signal.SIGHUP]  # the handler before still runs
        kind, body = audit.records[0]
        assert kind == "gateway" and body["event"] == "masking_reload" and body["result"] == "loaded"
        assert body["digest"] == _digest(catalogue) and body["chain"] == "gw-test" and body["ts"]
        # put in force right after the record is written, on the watcher's thread
        _wait(lambda: assembly.masker.mask(TEXT) == b"employee [EMPLOYEE_ID] wrote from [EMAIL]")
    finally:
        for close in gateway.on_close:
            close()
        signal.signal(signal.SIGHUP, previous)


def test_a_catalogue_whose_reload_cannot_be_recorded_is_not_put_in_force(catalogue: Path) -> None:
    masker = Masker.from_file(catalogue)
    in_force = masker.digest
    down = [True]
    recorded: list[dict[str, Any]] = []

    def record(result: dict[str, Any]) -> None:
        if down[0]:
            raise OSError("No space left on device")  # what an unavailable audit log raises, in effect
        recorded.append(result)

    watcher = CatalogueWatcher(masker, str(catalogue), 0.02, on_result=record)
    _write(catalogue, EMPLOYEE)
    assert not watcher.reload()
    assert masker.digest == in_force and masker.mask(TEXT) == b"employee EMP-123456 wrote from [EMAIL]"
    assert watcher.last_error == "the reload could not be recorded"
    # the file has not changed since, but the watcher tries again once the record can be written
    down[0] = False
    watcher.start()
    try:
        _wait(lambda: watcher.reloads == 1)
    finally:
        watcher.stop()
    assert [r["result"] for r in recorded] == ["loaded"] and recorded[0]["previous"] == in_force
    assert masker.mask(TEXT) == b"employee [EMPLOYEE_ID] wrote from [EMAIL]"
