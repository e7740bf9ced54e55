"""An independent verifier written from docs/AUDIT_FORMAT.md alone (blake3 + cryptography).

It proves the format document is complete: it parses and checks logs written by the Rust writer
without sharing code with it. It also has the encoders the tampering tests use to forge
"consistent" edits (rehashing, re-signing), as an attacker with the document would.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from blake3 import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ZERO32 = bytes(32)
BODY_DOMAIN = b"GWAUDIT1-BODY\x00"
RECORD_DOMAIN = b"GWAUDIT1-RECORD\x00"
CHECKPOINT_DOMAIN = b"GWAUDIT1-CHECKPOINT\x00"


def h(data: bytes) -> bytes:
    return blake3(data).digest()


def str8(b: bytes) -> bytes:
    assert len(b) <= 255
    return bytes([len(b)]) + b


def frame(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


@dataclass
class SegHeader:
    chain: str
    first_seq: int
    prev: bytes

    def payload(self) -> bytes:
        return b"\x00GWAUDSEG" + struct.pack("<H", 1) + str8(self.chain.encode()) + struct.pack("<Q", self.first_seq) + self.prev


@dataclass
class Record:
    chain: str
    seq: int
    time_ns: int
    prev: bytes
    kind: str
    body: bytes | None
    body_hash: bytes = b""

    def __post_init__(self) -> None:
        if self.body is not None:
            self.body_hash = h(BODY_DOMAIN + self.body)

    @property
    def hash(self) -> bytes:
        return h(
            RECORD_DOMAIN
            + str8(self.chain.encode())
            + struct.pack("<QQ", self.seq, self.time_ns)
            + self.prev
            + str8(self.kind.encode())
            + self.body_hash
        )

    def payload(self) -> bytes:
        head = str8(self.chain.encode()) + struct.pack("<QQ", self.seq, self.time_ns) + self.prev + str8(self.kind.encode())
        if self.body is None:
            return b"\x03" + head + self.body_hash
        return b"\x01" + head + struct.pack("<I", len(self.body)) + self.body


@dataclass
class Checkpoint:
    chain: str
    cp_kind: int
    size: int
    head: bytes
    time_ns: int
    prev_cp: bytes
    pruned_before: int
    pruned_prev: bytes
    public_key: bytes
    signature: bytes = field(default=bytes(64))

    def unsigned(self) -> bytes:
        return (
            b"\x02"
            + str8(self.chain.encode())
            + bytes([self.cp_kind])
            + struct.pack("<Q", self.size)
            + self.head
            + struct.pack("<Q", self.time_ns)
            + self.prev_cp
            + struct.pack("<Q", self.pruned_before)
            + self.pruned_prev
            + self.public_key
        )

    @property
    def signed_msg(self) -> bytes:
        return CHECKPOINT_DOMAIN + self.unsigned()

    @property
    def hash(self) -> bytes:
        return h(self.signed_msg)

    def payload(self) -> bytes:
        return self.unsigned() + self.signature

    def signature_ok(self) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(self.signature, self.signed_msg)
            return True
        except (InvalidSignature, ValueError):
            return False

    def signed_with(self, seed: bytes) -> Checkpoint:
        key = Ed25519PrivateKey.from_private_bytes(seed)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pk = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        cp = replace(self, public_key=pk)
        return replace(cp, signature=key.sign(cp.signed_msg))


Item = SegHeader | Record | Checkpoint


class FormatError(Exception):
    pass


class _R:
    def __init__(self, b: bytes) -> None:
        self.b, self.i = b, 0

    def take(self, n: int) -> bytes:
        if len(self.b) - self.i < n:
            raise FormatError("payload too short")
        out = self.b[self.i : self.i + n]
        self.i += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def str8(self) -> str:
        return self.take(self.u8()).decode("utf-8")


def decode(payload: bytes) -> Item:
    r = _R(payload)
    t = r.u8()
    item: Item
    if t == 0x00:
        if r.take(8) != b"GWAUDSEG" or struct.unpack("<H", r.take(2))[0] != 1:
            raise FormatError("bad segment header")
        item = SegHeader(r.str8(), r.u64(), r.take(32))
    elif t in (0x01, 0x03):
        chain, seq, time_ns, prev, kind = r.str8(), r.u64(), r.u64(), r.take(32), r.str8()
        if t == 0x01:
            (n,) = struct.unpack("<I", r.take(4))
            item = Record(chain, seq, time_ns, prev, kind, r.take(n))
        else:
            item = Record(chain, seq, time_ns, prev, kind, None, r.take(32))
    elif t == 0x02:
        item = Checkpoint(r.str8(), r.u8(), r.u64(), r.take(32), r.u64(), r.take(32), r.u64(), r.take(32), r.take(32), r.take(64))
    else:
        raise FormatError(f"frame type {t:#x}")
    if r.i != len(payload):
        raise FormatError("trailing bytes")
    return item


def split(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(offset, payload) of each good frame, and the offset where good frames stop."""
    out, i = [], 0
    while i + 8 <= len(data):
        n, crc = struct.unpack("<II", data[i : i + 8])
        if n == 0 or n > 16 * 1024 * 1024 or i + 8 + n > len(data):
            break
        p = data[i + 8 : i + 8 + n]
        if zlib.crc32(p) != crc:
            break
        out.append((i, p))
        i += 8 + n
    return out, i


def segments(chain_dir: Path) -> list[Path]:
    return sorted(p for p in chain_dir.iterdir() if p.name.endswith(".seg"))


def read_items(path: Path) -> list[Item]:
    frames, end = split(path.read_bytes())
    return [decode(p) for _, p in frames]


def write_items(path: Path, items: list[Item]) -> None:
    path.write_bytes(b"".join(frame(i.payload()) for i in items))


@dataclass
class Result:
    ok: bool
    problems: list[str]
    records: int
    last_seq: int | None
    signed_size: int
    torn: bool


def verify_chain(chain_dir: Path, anchor_dir: Path | None = None, key: bytes | None = None) -> Result:
    """Rules 1-7 of the format document for one (unpruned) chain."""
    chain = chain_dir.name
    problems: list[str] = []
    prev, expected, last_time = ZERO32, 0, 0
    hashes: dict[int, bytes] = {}
    last_cp: Checkpoint | None = None
    signed, records, torn = 0, 0, False
    segs = segments(chain_dir)
    for si, seg in enumerate(segs):
        data = seg.read_bytes()
        frames, end = split(data)
        if end != len(data):
            if si == len(segs) - 1:
                torn = True
            else:
                problems.append(f"{seg.name}: bad frame at {end}")
        items = [decode(p) for _, p in frames]
        hdr = items[0]
        if not isinstance(hdr, SegHeader) or hdr.chain != chain or int(seg.name[:20]) != hdr.first_seq:
            problems.append(f"{seg.name}: bad header")
            continue
        if hdr.first_seq != expected or hdr.prev != prev:
            problems.append(f"{seg.name}: segment does not continue the chain")
        for it in items[1:]:
            if isinstance(it, Record):
                records += 1
                if it.chain != chain or it.seq != expected or it.prev != prev or it.time_ns < last_time:
                    problems.append(f"record {it.seq}: broken link")
                if it.seq == 0:
                    if it.kind != "audit.genesis":
                        problems.append("no genesis")
                    import json

                    gk = bytes.fromhex(json.loads(it.body or b"{}")["public_key"])
                    key = key or gk
                    if gk != key:
                        problems.append("genesis key differs from the pinned key")
                hashes[it.seq] = it.hash
                prev, expected, last_time = it.hash, it.seq + 1, it.time_ns
            elif isinstance(it, Checkpoint):
                if it.public_key != key or not it.signature_ok():
                    problems.append(f"checkpoint {it.size}: bad signature or key")
                if it.size > expected or hashes.get(it.size - 1) != it.head:
                    problems.append(f"checkpoint {it.size}: head mismatch")
                want_prev = last_cp.hash if last_cp else ZERO32
                if it.prev_cp != want_prev:
                    problems.append(f"checkpoint {it.size}: checkpoint chain broken")
                if it.time_ns < last_time and it.size == expected:
                    problems.append(f"checkpoint {it.size}: time before head")
                signed = max(signed, it.size)
                last_cp = it
            else:
                problems.append("unexpected header frame")
    cp_hashes = set()
    for seg in segs:
        for it in read_items(seg):
            if isinstance(it, Checkpoint):
                cp_hashes.add(it.hash)
    if anchor_dir is not None and (anchor_dir / chain).is_dir():
        for f in sorted((anchor_dir / chain).glob("*.ckpt")):
            frames, end = split(f.read_bytes())
            cp = decode(frames[0][1])
            assert isinstance(cp, Checkpoint)
            if cp.public_key != key or not cp.signature_ok():
                problems.append(f"anchor {f.name}: bad signature or key")
            elif cp.size > expected:
                problems.append(f"anchor {f.name}: local chain truncated")
            elif hashes.get(cp.size - 1) != cp.head:
                problems.append(f"anchor {f.name}: head mismatch")
            elif cp.hash not in cp_hashes:
                problems.append(f"anchor {f.name}: checkpoint missing locally")
    return Result(not problems, problems, records, expected - 1 if expected else None, signed, torn)


def verify_bundle(path: Path, key: bytes) -> list[str]:
    """Section 7: a bundle verifies on its own under a pinned key. Returns the problems found."""
    frames, end = split(path.read_bytes())
    problems = [] if end == len(path.read_bytes()) else [f"bad frame at {end}"]
    if not frames or frames[0][1][:9] != b"\x10GWAUDBDL":
        return ["no bundle header"]
    prev: bytes | None = None
    expected = -1
    hashes: dict[int, bytes] = {}
    covered = 0
    last_seq = -1
    for _, p in frames[1:]:
        it = decode(p)
        if isinstance(it, SegHeader):
            prev, expected, hashes, covered = it.prev, it.first_seq, {}, 0
        elif isinstance(it, Record):
            if it.seq != expected or it.prev != prev:
                problems.append(f"record {it.seq}: broken link")
            hashes[it.seq] = it.hash
            prev, expected, last_seq = it.hash, it.seq + 1, it.seq
        elif isinstance(it, Checkpoint):
            if it.public_key != key or not it.signature_ok():
                problems.append(f"checkpoint {it.size}: bad signature or key")
            if hashes.get(it.size - 1) != it.head:
                problems.append(f"checkpoint {it.size}: head mismatch")
            covered = max(covered, it.size)
    if covered <= last_seq:
        problems.append("last records not covered by a checkpoint")
    return problems
