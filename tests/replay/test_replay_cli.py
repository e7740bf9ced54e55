"""`graphwarden replay`: verification first, exit codes, output file, fixture source."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from trail import Trail, interrupted_then_approved_resume

from graphwarden.cli import main
from graphwarden.replay.source import write_jsonl


def _fixture(tmp_path: Path, t: Trail, verification: Mapping[str, object] | None) -> list[str]:
    records = tmp_path / "records.jsonl"
    write_jsonl(records, t.records)
    args = ["--records", str(records)]
    if verification is not None:
        vfile = tmp_path / "verification.json"
        vfile.write_text(json.dumps(verification))
        args += ["--records-verification", str(vfile)]
    return args


def _intact(t: Trail) -> dict[str, object]:
    return {"status": "intact", "message": "ok", "verified_through": t.last_seq(), "problems": []}


def test_json_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = interrupted_then_approved_resume()
    out = tmp_path / "r1.json"
    code = main(["replay", "--run", "R1", *_fixture(tmp_path, t, _intact(t)), "--format", "json", "--out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert [s["node"] for s in doc["runs"][0]["steps"]] == ["ingest", "lookup"]
    assert capsys.readouterr().out == ""


def test_text_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = interrupted_then_approved_resume()
    assert main(["replay", "--thread", "T1", *_fixture(tmp_path, t, _intact(t))]) == 0
    out = capsys.readouterr().out
    assert "run R1" in out and "run R2" in out and "step 4 refund" in out


def test_tampered_trail_is_refused_without_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = interrupted_then_approved_resume()
    v = {"status": "tampered", "message": "hash mismatch at gw-0 seq 7",
         "verified_through": {"gw-0": 6, "gw-1": 3}, "problems": ["gw-0 seq 7: body digest differs"]}
    out = tmp_path / "r.html"
    code = main(["replay", "--run", "R1", *_fixture(tmp_path, t, v), "--format", "html", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert not out.exists()
    assert captured.out == ""
    assert "tampered" in captured.err and "hash mismatch at gw-0 seq 7" in captured.err
    assert "gw-0 seq 7: body digest differs" in captured.err


def test_incomplete_trail_renders_with_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = interrupted_then_approved_resume()
    # gw-0 verified through seq 11 (the approval's "used" record): replaying R1 (and the approval
    # that gated its resume) uses only verified records -> 0 with a warning.
    v = {"status": "incomplete", "message": "torn tail", "verified_through": {"gw-0": 11, "gw-1": 3},
         "problems": ["gw-0: record 17 truncated"]}
    args = _fixture(tmp_path, t, v)
    assert main(["replay", "--run", "R1", *args]) == 0
    captured = capsys.readouterr()
    assert "INCOMPLETE: torn tail" in captured.out and "WARNING" in captured.err
    # R2's records lie beyond the verified prefix: rendered, marked, exit 4.
    assert main(["replay", "--run", "R2", *args]) == 4
    captured = capsys.readouterr()
    assert "UNVERIFIED" in captured.out and "outside the verified range" in captured.err


def test_fixture_without_verification_is_never_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = interrupted_then_approved_resume()
    assert main(["replay", "--run", "R1", *_fixture(tmp_path, t, None)]) == 4
    assert "fixture" in capsys.readouterr().out


def test_unknown_id_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = interrupted_then_approved_resume()
    assert main(["replay", "--request", "req-404", *_fixture(tmp_path, t, _intact(t))]) == 3
    assert "no request with id 'req-404'" in capsys.readouterr().err


def test_missing_audit_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--run", "R1", "--audit", str(tmp_path / "nope")]) == 2
    assert "no such audit directory" in capsys.readouterr().err


def test_malformed_records_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chain": "gw-0", "seq": 1, "ts": "2026-01-01T00:00:00Z", "kind": "request"}\n')
    assert main(["replay", "--run", "R1", "--records", str(bad)]) == 2
    assert "bad.jsonl:1: missing field(s) body" in capsys.readouterr().err


def test_one_selector_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", "--audit", "x"])
    assert exc.value.code == 2


def test_html_file_for_a_thread(tmp_path: Path) -> None:
    t = interrupted_then_approved_resume()
    out = tmp_path / "t1.html"
    assert main(["replay", "--thread", "T1", *_fixture(tmp_path, t, _intact(t)), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Carol Diaz" in page and 'data-status="intact"' in page
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".t1.html.")] == []  # no temp file left
