"""Each tampering case of issue 4 against a real log written by the Rust writer."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pyverify as pv
from audit_helpers import Log, fill, interior_seq, make_log, rehash_from  # noqa: F401 (fixture)
from graphwarden.audit import AuditLog


def _check_intact(lg: Log) -> None:
    rep = lg.verify()
    assert rep.exit_code == 0, rep.findings
    assert pv.verify_chain(lg.chain_dir, lg.anchor).ok


def test_untouched_log_is_intact_and_spans_segments(make_log) -> None:
    lg = make_log(200)
    assert len(lg.segments()) >= 4
    _check_intact(lg)
    chain = lg.verify().data["chains"][0]
    assert chain["verified_through"] == 200 and chain["signed_through"] == 200


def test_byte_edited_in_a_record(make_log) -> None:
    lg = make_log()
    seq = interior_seq(lg, 57)
    seg, idx = lg.record_locations()[seq]
    data = bytearray(seg.read_bytes())
    frames, _ = pv.split(bytes(data))
    off = frames[idx][0]
    pos = data.index(b'"i":%d' % (seq - 1), off) + 5  # record seq holds i=seq-1 (seq 0 is the genesis)
    data[pos] ^= 1
    seg.write_bytes(bytes(data))
    rep = lg.verify()
    assert rep.exit_code == 1
    assert "frame_corrupt" in rep.kinds()
    assert rep.data["chains"][0]["verified_through"] == seq - 1


def test_record_edited_and_rehashed(make_log) -> None:
    lg = make_log()
    seq = interior_seq(lg, 57)
    seg, idx = lg.record_locations()[seq]
    items = pv.read_items(seg)
    rec = items[idx]
    assert isinstance(rec, pv.Record) and rec.body is not None
    items[idx] = dataclasses.replace(rec, body=rec.body.replace(b'"i":%d' % (seq - 1), b'"i":999'))
    assert items[idx] != rec
    pv.write_items(seg, items)  # valid CRC, valid own hash, but the next record's prev no longer matches
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    broken = [f for f in rep.findings if f["kind"] == "chain_broken"]
    assert broken and broken[0]["seq"] == seq + 1
    assert rep.data["chains"][0]["verified_through"] == seq


def test_whole_suffix_rewritten_and_rehashed(make_log) -> None:
    lg = make_log()

    def edit(r: pv.Record) -> pv.Record:
        assert r.body is not None
        return dataclasses.replace(r, body=r.body.replace(b"req-56", b"req-XX"))

    rehash_from(lg, 57, edit)
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    assert "checkpoint_mismatch" in rep.kinds()
    assert rep.data["chains"][0]["verified_through"] < 80
    assert not pv.verify_chain(lg.chain_dir).ok


def test_record_deleted(make_log) -> None:
    lg = make_log()
    seq = interior_seq(lg, 57)
    seg, idx = lg.record_locations()[seq]
    items = pv.read_items(seg)
    del items[idx]
    pv.write_items(seg, items)
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    gap = [f for f in rep.findings if f["kind"] == "seq_gap"]
    assert gap and gap[0]["seq"] == seq


def test_two_records_swapped(make_log) -> None:
    lg = make_log()
    seq = interior_seq(lg, 57)
    seg, idx = lg.record_locations()[seq]
    seg2, idx2 = lg.record_locations()[seq + 1]
    assert seg == seg2
    items = pv.read_items(seg)
    items[idx], items[idx2] = items[idx2], items[idx]
    pv.write_items(seg, items)
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    assert {"seq_gap", "reordered"} & rep.kinds()
    assert rep.data["chains"][0]["verified_through"] == seq - 1


def test_tail_records_truncated(make_log) -> None:
    lg = make_log()
    segs = lg.segments()
    # Cut in the middle of the second-to-last segment, at a frame boundary, and drop the rest.
    seg = segs[-2]
    items = pv.read_items(seg)
    recs = [i for i, it in enumerate(items) if isinstance(it, pv.Record)]
    assert len(recs) >= 3
    pv.write_items(seg, items[: recs[-3]])
    segs[-1].unlink()
    assert lg.verify(anchor=False).exit_code == 0  # without a second location this is undetectable
    rep = lg.verify()
    assert rep.exit_code == 1
    assert "truncated" in rep.kinds()
    assert not pv.verify_chain(lg.chain_dir, lg.anchor).ok


def test_tail_segment_deleted(make_log) -> None:
    lg = make_log()
    lg.segments()[-1].unlink()
    rep = lg.verify()
    assert rep.exit_code == 1
    # Either records the anchor attests are gone, or (an empty just-rotated segment) the
    # anchored close checkpoint is.
    assert {"truncated", "checkpoint_missing"} & rep.kinds()


def test_tail_checkpoints_truncated(make_log) -> None:
    lg = make_log()
    last = lg.segments()[-1]
    items = pv.read_items(last)
    while isinstance(items[-1], pv.Checkpoint):
        items.pop()
    pv.write_items(last, items)
    rep = lg.verify()
    assert rep.exit_code == 1
    assert "checkpoint_missing" in rep.kinds()


def test_middle_segment_deleted(make_log) -> None:
    lg = make_log()
    segs = lg.segments()
    segs[len(segs) // 2].unlink()
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    assert "segment_gap" in rep.kinds()


def test_middle_segment_replaced(make_log) -> None:
    lg = make_log()
    mid = lg.segments()[len(lg.segments()) // 2]
    # A fabricated, self-consistent segment: same header, same seqs, other content, own hashes.
    items = pv.read_items(mid)
    header = items[0]
    assert isinstance(header, pv.SegHeader)
    prev = header.prev
    fake: list[pv.Item] = [header]
    for it in items[1:]:
        if isinstance(it, pv.Record):
            assert it.body is not None
            it = dataclasses.replace(it, prev=prev, body=it.body.replace(b"req-", b"REQ-"))
            prev = it.hash
            fake.append(it)
    pv.write_items(mid, fake)
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    assert "segment_replaced" in rep.kinds()
    assert rep.data["chains"][0]["verified_through"] < header.first_seq + len(fake) - 1


def test_records_spliced_from_another_chain(tmp_path: Path) -> None:
    lg = Log(tmp_path, tmp_path / "audit", tmp_path / "anchor", tmp_path / "k.key", "w0")
    a, b = lg.open(chain="w0"), lg.open(chain="w1")  # two workers, one directory, one key
    fill(a, 60)
    fill(b, 60)
    a.close()
    b.close()
    assert lg.verify().exit_code == 0
    assert len(lg.verify().data["chains"]) == 2
    # Replace w0's record 30 by w1's record 30: same key, same position, other chain.
    seg_a, ia = lg.record_locations()[30]
    lg_b = dataclasses.replace(lg, chain="w1")
    seg_b, ib = lg_b.record_locations()[30]
    items_a = pv.read_items(seg_a)
    items_a[ia] = pv.read_items(seg_b)[ib]
    pv.write_items(seg_a, items_a)
    rep = lg.verify()
    assert rep.exit_code == 1
    assert "foreign_record" in rep.kinds()
    assert {f["chain"] for f in rep.findings if f["severity"] == "tampering"} == {"w0"}


def test_rollback_to_older_consistent_copy(make_log, tmp_path: Path) -> None:
    lg = make_log(100)
    old = tmp_path / "old-copy"
    shutil.copytree(lg.audit, old)  # an older, fully consistent copy (e.g. a restored backup)
    w = lg.open()
    fill(w, 100, start=100)
    w.close()
    assert lg.verify().exit_code == 0
    shutil.rmtree(lg.audit)
    shutil.copytree(old, lg.audit)
    assert lg.verify(anchor=False).exit_code == 0  # consistent on its own
    rep = lg.verify()
    assert rep.exit_code == 1
    assert "truncated" in rep.kinds()


def test_checkpoint_resigned_with_another_key(make_log) -> None:
    lg = make_log()

    def edit(r: pv.Record) -> pv.Record:
        assert r.body is not None
        return dataclasses.replace(r, body=r.body.replace(b"req-56", b"req-XX"))

    rehash_from(lg, 57, edit, resign=os.urandom(32))
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    assert "wrong_key" in rep.kinds()


def test_forged_checkpoint_bad_signature(make_log) -> None:
    lg = make_log()
    seg = lg.segments()[1]
    items = pv.read_items(seg)
    i = next(i for i, it in enumerate(items) if isinstance(it, pv.Checkpoint))
    cp = items[i]
    assert isinstance(cp, pv.Checkpoint)
    items[i] = dataclasses.replace(cp, time_ns=cp.time_ns + 1)  # keep key, signature now wrong
    pv.write_items(seg, items)
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    assert "bad_signature" in rep.kinds()


def test_whole_chain_rewritten_with_another_key_caught_by_pinned_key_and_anchor(make_log) -> None:
    lg = make_log()
    pub = (lg.key_file.parent / (lg.key_file.name + ".pub")).read_text().strip()
    seed = os.urandom(32)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    fake_pub = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def edit(r: pv.Record) -> pv.Record:
        assert r.body is not None
        return dataclasses.replace(r, body=r.body.replace(bytes.fromhex(pub).hex().encode(), fake_pub.hex().encode()))

    rehash_from(lg, 0, edit, resign=seed)
    assert lg.verify(anchor=False).exit_code == 0  # self-consistent forgery
    assert "wrong_key" in lg.verify(anchor=False, key=pub).kinds()
    assert lg.verify().exit_code == 1  # the anchor was signed with the real key


def test_back_dated_timestamp(make_log) -> None:
    lg = make_log()
    # An insider with the signing key back-dates record 57 and re-signs everything after it.

    def edit(r: pv.Record) -> pv.Record:
        return dataclasses.replace(r, time_ns=r.time_ns - 3_600 * 10**9)

    rehash_from(lg, 57, edit, resign=lg.seed())
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 1
    tb = [f for f in rep.findings if f["kind"] == "time_backwards"]
    assert tb and tb[0]["seq"] == 57


def test_torn_final_frame_is_recoverable_not_tampering(make_log) -> None:
    lg = make_log(100)
    # Simulate a crash in the middle of writing a frame.
    last = lg.segments()[-1]
    frame = pv.frame(pv.Record("w0", 101, 1, bytes(32), "x", b"{}").payload())
    with last.open("ab") as f:
        f.write(frame[: len(frame) // 2])
    rep = lg.verify(anchor=False)
    assert rep.exit_code == 2
    assert rep.kinds() == {"torn_tail"}
    log = lg.open()
    assert log.recovered is not None and '"torn_bytes":' in log.recovered
    fill(log, 5, start=100)
    log.close()
    assert list(lg.chain_dir.glob("*.torn-*"))
    _check_intact(lg)
    kinds = [k for _, _, _, k, _ in __import__("graphwarden.audit._bind", fromlist=["native"]).native.audit_read_records(str(lg.audit))]
    assert "audit.recovery" in kinds


def test_head_segment_deleted_vs_signed_pruning(make_log) -> None:
    lg = make_log()
    deleted = make_log()
    deleted.segments()[0].unlink()
    rep = deleted.verify(anchor=False)
    assert rep.exit_code == 1 and "head_deleted" in rep.kinds()
    log = lg.open()
    removed = log.prune(0.0)
    log.close()
    assert removed >= 3
    rep = lg.verify()
    assert rep.exit_code == 0, rep.findings
    assert rep.data["chains"][0]["pruned_before"] > 0


def test_chain_missing_against_anchor(make_log) -> None:
    lg = make_log(30)
    shutil.rmtree(lg.chain_dir)
    (lg.audit / "other").mkdir()
    rep = lg.verify()
    assert rep.exit_code == 1
    assert "chain_missing" in rep.kinds()


def test_pyverify_agrees_with_rust_on_a_fresh_log(make_log) -> None:
    lg = make_log(300)
    res = pv.verify_chain(lg.chain_dir, lg.anchor)
    assert res.ok, res.problems
    assert res.records == 301 and res.signed_size == 301


def test_export_bundle_verifies_on_its_own(make_log, tmp_path: Path) -> None:
    from graphwarden.audit._verify import export_bundle, verify

    lg = make_log(200)
    out = tmp_path / "run1.bundle"
    n = export_bundle(lg.audit, out, lambda r: b'"run_id":"run-1"' in r.body, {"run_id": "run-1"})
    assert n == 66 or n == 67
    rep = verify(out)
    assert rep.exit_code == 0, rep.findings
    assert b"run-0" not in out.read_bytes()  # other runs' bodies are elided
    data = bytearray(out.read_bytes())
    pos = data.index(b"run-1", data.index(b"GWAUDSEG"))  # past the bundle header
    data[pos + 4] = ord("2")
    out.write_bytes(bytes(data))
    assert verify(out).exit_code == 1


def test_pyverify_checks_export_bundles_from_the_document_alone(make_log, tmp_path: Path) -> None:
    from graphwarden.audit._verify import export_bundle

    lg = make_log(150)
    key = bytes.fromhex((lg.key_file.parent / (lg.key_file.name + ".pub")).read_text())
    out = tmp_path / "t0.bundle"
    assert export_bundle(lg.audit, out, lambda r: b'"thread_id":"t-0"' in r.body, {"thread_id": "t-0"}) == 75
    assert pv.verify_bundle(out, key) == []
    assert pv.verify_bundle(out, os.urandom(32))  # another key: rejected
    data = bytearray(out.read_bytes())
    frames, _ = pv.split(bytes(data))
    # Re-encode one elided record with a different body hash: CRC fine, chain broken.
    for off, p in frames:
        if p[0] == 0x03:
            rec = pv.decode(p)
            assert isinstance(rec, pv.Record)
            forged = pv.frame(dataclasses.replace(rec, body_hash=bytes(32)).payload())
            data[off : off + len(forged)] = forged
            break
    out.write_bytes(bytes(data))
    assert pv.verify_bundle(out, key)
    from graphwarden.audit import verify

    assert verify(out).exit_code == 1
