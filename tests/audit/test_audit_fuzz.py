"""Property: no single-byte change anywhere in a closed log goes unnoticed, and the verifier never
crashes on mangled input."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_helpers import Log, fill
from graphwarden.audit import verify


def _build(root: Path) -> Log:
    lg = Log(root, root / "audit", root / "anchor", root / "k.key", "w0")
    log = lg.open()
    fill(log, 80)
    log.close()
    return lg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_flip_is_detected(tmp_path_factory, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.getbasetemp() / "fuzz-base"
    if not base.exists():
        _build(base)
    work = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(base / "audit", work / "audit")
    segs = sorted((work / "audit" / "w0").glob("*.seg"))
    seg = data.draw(st.sampled_from(segs))
    raw = bytearray(seg.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    seg.write_bytes(bytes(raw))
    rep = verify(work / "audit", base / "anchor")
    assert rep.exit_code in (1, 2), (seg.name, pos)
    if seg != segs[-1]:
        assert rep.exit_code == 1  # only the very end of the log may look like a torn write


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=300), cut=st.integers(0, 4000))
def test_truncated_or_junk_segments_never_crash_the_verifier(tmp_path_factory, junk: bytes, cut: int) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.getbasetemp() / "fuzz-base2"
    if not base.exists():
        _build(base)
    work = tmp_path_factory.mktemp("junk")
    shutil.copytree(base / "audit", work / "audit")
    seg = sorted((work / "audit" / "w0").glob("*.seg"))[1]
    raw = seg.read_bytes()
    seg.write_bytes(raw[: min(cut, len(raw))] + junk)
    rep = verify(work / "audit", base / "anchor")
    assert rep.exit_code in (0, 1, 2)
    if raw[: min(cut, len(raw))] + junk != raw:
        assert rep.exit_code == 1
