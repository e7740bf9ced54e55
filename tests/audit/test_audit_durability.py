"""Crash safety (kill -9 in strict mode) and fail-closed behaviour on write errors."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvloop

import pyverify as pv
from graphwarden.audit import AuditLog, AuditUnavailable, verify
from graphwarden.audit._verify import read_records

HERE = Path(__file__).parent


def test_kill_9_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    audit, key = tmp_path / "audit", tmp_path / "k.key"
    acked: dict[int, tuple[int, int, int]] = {}
    rng = random.Random(int(os.environ.get("GW_AUDIT_CRASH_SEED", "4")))
    rounds = 9
    opened_after_crash = 0
    for r in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_writer.py"), str(audit), str(key), str(r)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout))  # type: ignore[arg-type]
        reader.start()
        if r % 3 == 2:
            # Anywhere from interpreter start-up through open/recovery to the first appends.
            time.sleep(rng.uniform(0.05, 0.6))
        else:
            deadline = time.monotonic() + 10
            while len(lines) < 20 and time.monotonic() < deadline:  # let it write a while
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join()
        if lines and lines[0].startswith("open "):
            assert lines[0].strip() == f"open {r > 0}"  # every restart after a kill recovers
            opened_after_crash += r > 0
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 4:  # a line cut by the kill is not an acknowledgement
                acked[int(parts[0])] = (int(parts[1]), int(parts[2]), int(parts[3]))
        if not (audit / "w0").exists():
            continue
        # Right after the crash: intact or a torn tail, never tampering.
        rep = verify(audit)
        assert rep.exit_code in (0, 2), rep.findings
        stored = {rec.seq: json.loads(rec.body) for rec in read_records(audit) if rec.kind == "test.event"}
        for seq, (rr, k, i) in acked.items():
            assert seq in stored, f"acknowledged record {seq} lost"
            assert (stored[seq]["round"], stored[seq]["worker"], stored[seq]["i"]) == (rr, k, i)
    assert len(acked) > 100
    log = AuditLog.open(audit, key_file=key, chain="w0")
    assert log.recovered is not None
    log.close()
    rep = verify(audit)
    assert rep.exit_code == 0, rep.findings
    kinds = [rec.kind for rec in read_records(audit)]
    assert opened_after_crash + 1 <= kinds.count("audit.recovery") <= rounds
    assert pv.verify_chain(audit / "w0").ok


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


def test_disk_full_fails_closed_and_recovers_by_itself(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "512k"):
        pytest.skip("needs root to mount a small tmpfs; test_write_error_fails_closed covers EFBIG")
    try:
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * 300_000)
        log = AuditLog.open(mnt / "audit", key_file=tmp_path / "k.key", chain="w0", mode="strict")
        seqs: list[int] = []
        with pytest.raises(AuditUnavailable) as info:
            for i in range(10_000):
                seqs.append(log.append("test.event", {"i": i, "pad": "z" * 2000}))
                log.wait_durable_blocking(seqs[-1], 5.0)
        assert "No space left on device" in str(info.value)
        assert not log.healthy()
        assert "No space left" in (log.last_error() or "")
        with pytest.raises(AuditUnavailable):
            log.append("test.event", {"refused": True})
        assert info.value.status == 503
        ballast.unlink()
        deadline = time.monotonic() + 5
        while not log.healthy() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.healthy()
        last = log.append("test.event", {"after": True})
        assert log.wait_durable_blocking(last, 5.0)
        log.close()
        rep = verify(mnt / "audit")
        assert rep.exit_code == 0, rep.findings
        present = {r.seq for r in read_records(mnt / "audit")}
        assert set(seqs) <= present and last in present
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_write_error_fails_closed_and_recovers_by_itself(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    out = subprocess.run(
        [sys.executable, str(HERE / "fsize_writer.py"), str(audit), str(tmp_path / "k.key")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["failed_wait"] and "File too large" in res["failed_wait"]
    assert res["healthy_during"] is False and "File too large" in res["error_during"]
    assert res["recovered"] is True
    rep = verify(audit)
    assert rep.exit_code == 0, rep.findings
    present = {r.seq for r in read_records(audit)}
    assert set(res["acked"]) <= present and res["after"] in present


def test_async_waiters_on_uvloop(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0", mode="strict")

    async def main() -> list[int]:
        turns = 0
        advanced = 0  # awaits during which the loop ran other tasks

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        async def client(c: int) -> list[int]:
            nonlocal advanced
            seqs = []
            for i in range(100):
                before = turns
                seqs.append(await log.append_durable("test.event", {"c": c, "i": i}))
                advanced += turns > before
            return seqs

        t = asyncio.create_task(ticker())
        per_client = await asyncio.gather(*(client(c) for c in range(20)))
        t.cancel()
        # Waiting for durability suspends the task and lets the loop run others: a wait that
        # blocked the loop in fdatasync would return without the ticker getting a turn. Counts
        # of turns, not timings, so a fast or a slow disk gives the same answer.
        assert advanced > 2000 // 2, advanced
        return [s for seqs in per_client for s in seqs]

    seqs = uvloop.run(main())
    assert sorted(seqs) == list(range(1, 2001))
    assert all(log.is_durable(s) for s in seqs)
    log.close()


def test_close_fails_pending_waiters_and_refuses_appends(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0", mode="batch", batch_window_s=5.0)

    async def main() -> None:
        seq = log.append("test.event", {"i": 1})
        waiter = asyncio.ensure_future(log.wait_durable(seq))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # batch window of 5 s: not synced yet
        log.close()  # close syncs everything: the waiter resolves, not fails
        await asyncio.wait_for(waiter, 2)

    uvloop.run(main())
    with pytest.raises(AuditUnavailable):
        log.append("test.event", {"i": 2})


def test_second_writer_on_same_chain_is_refused(tmp_path: Path) -> None:
    from graphwarden.audit import AuditError

    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0")
    with pytest.raises(AuditError, match="another process"):
        AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0")
    log.close()


def test_key_file_created_private_and_mismatch_refused(tmp_path: Path) -> None:
    from graphwarden.audit import AuditError

    key = tmp_path / "keys" / "a.key"
    AuditLog.open(tmp_path / "audit", key_file=key, chain="w0").close()
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_text().strip()) == 64
    with pytest.raises(AuditError, match="does not match"):
        AuditLog.open(tmp_path / "audit", key_file=tmp_path / "other.key", chain="w0")
    key.chmod(0o644)
    with pytest.raises(AuditError, match="chmod 600"):
        AuditLog.open(tmp_path / "audit2", key_file=key, chain="w0")


def test_batch_mode_loss_bound_window_is_respected(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0", mode="batch", batch_window_s=0.1)
    t0 = time.monotonic()
    seq = log.append("test.event", {"i": 1})
    assert log.wait_durable_blocking(seq, 2.0)
    assert time.monotonic() - t0 < 0.5
    log.close()
