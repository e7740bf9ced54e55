"""Helpers and the `make_log` fixture for the audit tests: build real logs with the Rust writer,
then tamper with them as an attacker holding the format document (tests/audit/pyverify.py)
would. Test modules import `make_log` from here: a conftest.py in this folder would shadow
tests/conftest.py for `from conftest import ...` in other areas' tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import pyverify as pv
from graphwarden.audit import AuditLog, VerifyReport, verify


@dataclass
class Log:
    root: Path
    audit: Path
    anchor: Path
    key_file: Path
    chain: str = "w0"

    @property
    def chain_dir(self) -> Path:
        return self.audit / self.chain

    def segments(self) -> list[Path]:
        return pv.segments(self.chain_dir)

    def seed(self) -> bytes:
        return bytes.fromhex(self.key_file.read_text().strip())

    def verify(self, anchor: bool = True, key: str | None = None) -> VerifyReport:
        return verify(self.audit, self.anchor if anchor else None, key)

    def open(self, **kw: object) -> AuditLog:
        args: dict[str, object] = dict(
            key_file=self.key_file, chain=self.chain, anchor_dir=self.anchor, checkpoint_every=40, segment_max_bytes=4096, mode="strict"
        )
        args.update(kw)
        return AuditLog.open(self.audit, **args)  # type: ignore[arg-type]

    def all_items(self) -> list[tuple[Path, list[pv.Item]]]:
        return [(s, pv.read_items(s)) for s in self.segments()]

    def record_locations(self) -> dict[int, tuple[Path, int]]:
        out = {}
        for seg, items in self.all_items():
            for i, it in enumerate(items):
                if isinstance(it, pv.Record):
                    out[it.seq] = (seg, i)
        return out


def fill(log: AuditLog, n: int, start: int = 0, chunk: int = 10, **extra: object) -> list[int]:
    """Append n records in chunks, waiting for durability between chunks so segments rotate."""
    seqs = []
    for i in range(start, start + n):
        body = {"i": i, "request_id": f"req-{i}", "run_id": f"run-{i % 3}", "thread_id": f"t-{i % 2}", "pad": "x" * 120}
        body.update(extra)
        seqs.append(log.append("http.request", body))
        if (i + 1) % chunk == 0:
            assert log.wait_durable_blocking(seqs[-1], 5.0)
    return seqs


@pytest.fixture
def make_log(tmp_path: Path) -> Callable[..., Log]:
    counter = [0]

    def make(n: int = 200, chain: str = "w0", close: bool = True, **kw: object) -> Log:
        counter[0] += 1
        root = tmp_path / f"log{counter[0]}"
        lg = Log(root, root / "audit", root / "anchor", root / "keys" / "audit.key", chain)
        log = lg.open(**kw)
        fill(log, n)
        if close:
            log.close()
        return lg

    return make


def rehash_from(lg: Log, seq: int, edit: Callable[[pv.Record], pv.Record] | None = None, resign: bytes | None = None) -> None:
    """Rewrite every record from `seq` on so the hash chain is consistent again (an attacker
    without the key); with `resign`, also re-sign every checkpoint from there with that seed."""
    prev = None
    last_cp_hash = None
    hashes: dict[int, bytes] = {}
    for seg, items in lg.all_items():
        out: list[pv.Item] = []
        for it in items:
            if isinstance(it, pv.SegHeader):
                if prev is not None:
                    it.prev = prev
            elif isinstance(it, pv.Record):
                if it.seq == seq and edit is not None:
                    it = edit(it)
                if it.seq >= seq and prev is not None:
                    it.prev = prev
                prev = it.hash
                hashes[it.seq] = prev
            elif isinstance(it, pv.Checkpoint):
                if resign is not None and it.size > seq:
                    it.head = hashes[it.size - 1]
                    if last_cp_hash is not None:
                        it.prev_cp = last_cp_hash
                    it = it.signed_with(resign)
                last_cp_hash = it.hash
            out.append(it)
        pv.write_items(seg, out)


def copytree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def interior_seq(lg: Log, start: int) -> int:
    """The first seq >= start whose record has records right before it and two right after it in
    the same segment, so an edit there yields one plain finding rather than a boundary case."""
    locs = lg.record_locations()
    seq = start
    while True:
        seg, idx = locs[seq]
        items = pv.read_items(seg)
        if idx + 2 < len(items) and all(isinstance(items[j], pv.Record) for j in (idx - 1, idx + 1, idx + 2)):
            return seq
        seq += 1
