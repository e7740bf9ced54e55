"""Where replay reads audit records from, and how it learns whether the chain is intact.

Replay depends only on this small contract, so the model and renderers can be built and tested
independently of the on-disk audit format:

- `RecordSource.records()` yields every record of every chain (any order; replay sorts).
- `RecordSource.verify()` checks the chain(s) and says how far each chain verified.

`open_source()` is the production entry point, over the real audit reader (`graphwarden.audit`). `JsonlSource` is a fixture source for tests and for
hand-made examples: it reads records from a JSON-lines file and reports whatever verification
result it was given. It does no cryptographic checking and must never be used as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

VerificationStatus = Literal["intact", "tampered", "incomplete"]
_STATUSES: tuple[str, ...] = ("intact", "tampered", "incomplete")


class ReplaySourceError(Exception):
    """The audit records could not be opened or read (bad directory, malformed fixture...)."""


@dataclass(frozen=True)
class AuditRecord:
    """One record of an audit chain: its position (`chain`, `seq`), header time and payload."""

    chain: str
    seq: int
    ts: str  # RFC 3339 timestamp from the record header
    kind: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Verification:
    """Result of verifying the chain(s).

    `verified_through` maps each chain to the last sequence number whose hash links and
    signatures/anchors checked out. `problems` lists human-readable findings (first break,
    torn tail, missing anchor...).
    """

    status: VerificationStatus
    message: str
    verified_through: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def covers(self, record: AuditRecord) -> bool:
        """True when `record` lies within the verified prefix of its chain."""
        last = self.verified_through.get(record.chain)
        return last is not None and record.seq <= last


class RecordSource(Protocol):
    def records(self) -> Iterator[AuditRecord]:
        """All records of all chains, in any order; a fresh iterator on each call (replay reads
        the trail twice: once for links, once for the records in scope)."""
        ...

    def verify(self) -> Verification:
        """Verify the chain(s) this source reads."""
        ...


def open_source(audit_dir: str, anchor_dir: str | None = None) -> RecordSource:
    """Open the audit trail in `audit_dir` (anchors in `anchor_dir`) for replay: the chain
    directory written by the gateway, or an export bundle, read and verified by the native
    verifier (graphwarden.audit)."""
    from graphwarden.replay.audit_source import AuditDirSource

    return AuditDirSource(audit_dir, anchor_dir)


def record_from_json(obj: Any, where: str) -> AuditRecord:
    """Build an `AuditRecord` from a decoded JSON object, with a clear error naming `where`."""
    if not isinstance(obj, dict):
        raise ReplaySourceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("chain", "seq", "ts", "kind", "body") if k not in obj]
    if missing:
        raise ReplaySourceError(f"{where}: missing field(s) {', '.join(missing)}")
    chain, seq, ts, kind, body = obj["chain"], obj["seq"], obj["ts"], obj["kind"], obj["body"]
    if not isinstance(chain, str) or not isinstance(kind, str) or not isinstance(ts, str):
        raise ReplaySourceError(f"{where}: chain, ts and kind must be strings")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ReplaySourceError(f"{where}: seq must be a non-negative integer")
    if not isinstance(body, dict):
        raise ReplaySourceError(f"{where}: body must be a JSON object")
    return AuditRecord(chain=chain, seq=seq, ts=ts, kind=kind, body=body)


def verification_from_json(obj: Any, where: str) -> Verification:
    if not isinstance(obj, dict):
        raise ReplaySourceError(f"{where}: expected a JSON object")
    status = obj.get("status")
    if status not in _STATUSES:
        raise ReplaySourceError(f"{where}: status must be one of {', '.join(_STATUSES)}")
    through = obj.get("verified_through", {})
    if not isinstance(through, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in through.items()
    ):
        raise ReplaySourceError(f"{where}: verified_through must map chain names to integers")
    problems = obj.get("problems", [])
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        raise ReplaySourceError(f"{where}: problems must be a list of strings")
    return Verification(
        status=status,
        message=str(obj.get("message", "")),
        verified_through=dict(through),
        problems=list(problems),
    )


UNVERIFIED_FIXTURE = Verification(
    status="incomplete",
    message="records come from a JSON-lines fixture, not from a verified audit chain",
    verified_through={},
    problems=["fixture source: no chain verification was performed"],
)


class JsonlSource:
    """Test/fixture source: records from a JSON-lines file, verification as given.

    Without an explicit `verification` the source reports `incomplete` with nothing verified,
    so a fixture can never pass for a verified trail.
    """

    def __init__(self, path: str | Path, verification: Verification | None = None) -> None:
        self._path = Path(path)
        self._verification = verification if verification is not None else UNVERIFIED_FIXTURE
        if not self._path.is_file():
            raise ReplaySourceError(f"{self._path}: no such records file")

    def records(self) -> Iterator[AuditRecord]:
        with self._path.open("r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{self._path}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ReplaySourceError(f"{where}: invalid JSON ({exc.msg})") from None
                yield record_from_json(obj, where)

    def verify(self) -> Verification:
        return self._verification


def write_jsonl(path: str | Path, records: list[AuditRecord]) -> None:
    """Write records in the format `JsonlSource` reads (used by tests and examples)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in records:
            obj = {"chain": r.chain, "seq": r.seq, "ts": r.ts, "kind": r.kind, "body": r.body}
            fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
