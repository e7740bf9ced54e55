"""`graphwarden masking scan | check | bench`, run as an operator runs them (the installed CLI's
module, a real process, standard input and exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import blake3

EMPLOYEE = ('[[entries]]\nid = "employee_id"\nentity = "EMPLOYEE_ID"\npatterns = [\'\\bEMP-\\d{6}\\b\']\n'
            'max_len = 10\n')


def _cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "graphwarden", "masking", *args], input=stdin, capture_output=True,
                          timeout=120)


def test_scan_masks_standard_input_and_summarises(tmp_path: Path) -> None:
    r = _cli("scan", stdin=b"mail jane.doe@example.com, card 4111 1111 1111 1111\n")
    assert r.returncode == 0
    assert r.stdout == b"mail [EMAIL], card [CARD]\n"
    assert b"2 finding(s): CARD 1, EMAIL 1" in r.stderr
    cat = tmp_path / "ops.toml"
    cat.write_text(EMPLOYEE)
    doc = json.dumps({"note": "EMP-123456 at jane.doe@example.com"}).encode()
    r = _cli("scan", "--catalogue", str(cat), "--json", stdin=doc)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["json"] is True
    assert json.loads(out["masked"]) == {"note": "[EMPLOYEE_ID] at [EMAIL]"}
    assert out["summary"] == {"EMPLOYEE_ID": 1, "EMAIL": 1}
    assert "EMP-123456" not in r.stdout.decode() and "jane.doe" not in r.stdout.decode()


def test_check_passes_the_shipped_catalogue_and_names_its_digest() -> None:
    r = _cli("check", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    shipped = Path(__file__).resolve().parents[2] / "python" / "graphwarden" / "masking" / "catalogue.toml"
    assert out["catalogue"] == "<default>" and out["digest"] == blake3.blake3(shipped.read_bytes()).hexdigest()
    assert out["failed"] == 0 and out["untested"] == [] and len(out["entries"]) == 21


def test_check_names_each_fixture_that_fails_and_exits_1(tmp_path: Path) -> None:
    cat = tmp_path / "ops.toml"
    cat.write_text(EMPLOYEE + 'positive = ["EMP-123456", "EMP-1234567"]\nnegative = ["EMP-12", "EMP-654321"]\n')
    r = _cli("check", "--catalogue", str(cat))
    text = r.stdout.decode()
    assert r.returncode == 1
    assert "FAIL     employee_id" in text
    assert "positive fixture not matched: 'EMP-1234567'" in text
    assert "negative fixture matched: 'EMP-654321'" in text
    assert "EMP-123456'" not in text and "EMP-12'" not in text  # the fixtures that behave are not listed
    assert f"(BLAKE3 {blake3.blake3(cat.read_bytes()).hexdigest()}): 22 entries enabled, 1 failed" in text


def test_check_without_fixtures_passes_unless_strict(tmp_path: Path) -> None:
    cat = tmp_path / "ops.toml"
    cat.write_text(EMPLOYEE)
    r = _cli("check", "--catalogue", str(cat))
    assert r.returncode == 0 and "untested employee_id" in r.stdout.decode().replace("  ", " ").replace("  ", " ")
    assert "1 without positive fixtures" in r.stdout.decode()
    assert _cli("check", "--catalogue", str(cat), "--strict").returncode == 1


def test_check_and_scan_refuse_a_catalogue_that_does_not_compile(tmp_path: Path) -> None:
    cat = tmp_path / "ops.toml"
    cat.write_text(EMPLOYEE.replace("EMP-", "EMP-("))
    for args in (("check",), ("scan",), ("bench", "--bytes", "4096")):
        r = _cli(*args, "--catalogue", str(cat), stdin=b"x")
        err = r.stderr.decode()
        assert r.returncode == 2, (args, err)
        assert "entry employee_id: pattern does not compile" in err and "unclosed group" in err


def test_bench_measures_and_names_the_slowest_entries(tmp_path: Path) -> None:
    r = _cli("bench", "--bytes", str(256 << 10))
    text = r.stdout.decode()
    assert "pattern set: 21 entries" in text and "PII-dense" in text
    assert "slowest entries alone" in text
    # a pattern that scans prose slowly makes the set slow: named, exit 1
    cat = tmp_path / "slow.toml"
    cat.write_text('[[entries]]\nid = "any_word"\nentity = "WORD"\npatterns = [\'\\b[a-z]{2,40}\\b\']\nmax_len = 40\n')
    r = _cli("bench", "--catalogue", str(cat), "--bytes", str(256 << 10))
    assert r.returncode == 1 and "slowest entry: any_word" in r.stderr.decode()
