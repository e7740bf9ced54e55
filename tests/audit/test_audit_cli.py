"""`graphwarden audit verify | tail | export` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pyverify as pv
from audit_helpers import fill, make_log  # noqa: F401 (fixture)
from graphwarden.cli import main


def test_verify_exit_codes_and_messages(make_log, capsys: pytest.CaptureFixture[str]) -> None:
    lg = make_log(120)
    assert main(["audit", "verify", str(lg.audit), "--anchor", str(lg.anchor)]) == 0
    out = capsys.readouterr().out
    assert "verified through seq 120" in out and "INTACT" in out

    seq = 40
    while True:  # a record with records on both sides, so the finding is a plain seq gap
        seg, idx = lg.record_locations()[seq]
        items = pv.read_items(seg)
        if isinstance(items[idx - 1], pv.Record) and isinstance(items[idx + 1], pv.Record):
            break
        seq += 1
    del items[idx]
    pv.write_items(seg, items)
    assert main(["audit", "verify", str(lg.audit)]) == 1
    out = capsys.readouterr().out
    assert "chain w0" in out and f"seq_gap at seq {seq}" in out and f"verified through seq {seq - 1}" in out
    assert "TAMPERING DETECTED" in out

    assert main(["audit", "verify", str(lg.audit), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "tampered" and data["chains"][0]["verified_through"] == seq - 1


def test_verify_torn_tail_exits_2(make_log, capsys: pytest.CaptureFixture[str]) -> None:
    lg = make_log(30)
    with lg.segments()[-1].open("ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")
    assert main(["audit", "verify", str(lg.audit)]) == 2
    assert "torn_tail" in capsys.readouterr().out


def test_verify_missing_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "nope")]) == 2
    assert "neither an audit directory nor a bundle" in capsys.readouterr().err


def test_tail_and_export_roundtrip(make_log, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lg = make_log(60)
    assert main(["audit", "tail", str(lg.audit), "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[-1].startswith("w0 60 ") and '"i":59' in lines[-1]

    out = tmp_path / "t1.bundle"
    assert main(["audit", "export", str(lg.audit), "--thread", "t-1", "--out", str(out)]) == 0
    assert "exported 30 records" in capsys.readouterr().out
    assert main(["audit", "verify", str(out)]) == 0
    pub = (lg.key_file.parent / (lg.key_file.name + ".pub"))
    assert main(["audit", "verify", str(out), "--key", str(pub)]) == 0
    capsys.readouterr()
    other = tmp_path / "other.key"
    other.write_text("11" * 32 + "\n")
    assert main(["audit", "verify", str(out), "--key", str(other)]) == 1
    assert "wrong_key" in capsys.readouterr().out

    since = tmp_path / "since.bundle"
    assert main(["audit", "export", str(lg.audit), "--since", "0", "--out", str(since)]) == 0
    assert main(["audit", "export", str(lg.audit), "--run", "no-such-run", "--out", str(tmp_path / "e")]) == 2


def test_tail_follow_prints_new_records(make_log, tmp_path: Path) -> None:

    lg = make_log(5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "graphwarden.cli", "audit", "tail", str(lg.audit), "-n", "1", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("w0 5 ")
        log = lg.open()
        fill(log, 3, start=100)
        log.close()
        got = [proc.stdout.readline() for _ in range(3)]  # the reopened chain closed cleanly: no recovery record
        assert ['"i":100' in got[0], '"i":102' in got[2]] == [True, True]
    finally:
        proc.kill()
        proc.wait()
