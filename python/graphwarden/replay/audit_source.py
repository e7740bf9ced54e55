"""The real record source for replay: the audit chain directory written by the gateway,
read and verified by the native verifier (graphwarden.audit)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

from graphwarden.audit import AuditError, verify
from graphwarden.audit._verify import read_records
from graphwarden.replay.source import AuditRecord, ReplaySourceError, Verification

_STATUS = {0: "intact", 1: "tampered", 2: "incomplete"}


def _iso(time_ns: int) -> str:
    dt = datetime.datetime.fromtimestamp(time_ns / 1e9, tz=datetime.timezone.utc)
    return dt.isoformat(timespec="microseconds")


class AuditDirSource:
    """Records of every chain in an audit directory (or an export bundle)."""

    def __init__(self, audit_dir: str, anchor_dir: str | None = None) -> None:
        if not Path(audit_dir).exists():
            raise ReplaySourceError(f"{audit_dir}: no such audit directory")
        self.audit_dir = audit_dir
        self.anchor_dir = anchor_dir

    def records(self) -> Iterator[AuditRecord]:
        try:
            rows = read_records(self.audit_dir)
        except AuditError as exc:
            raise ReplaySourceError(f"{self.audit_dir}: {exc}") from None
        for r in rows:
            body = r.json()
            if isinstance(body, dict):
                yield AuditRecord(chain=r.chain, seq=r.seq, ts=_iso(r.time_ns), kind=r.kind, body=body)

    def verify(self) -> Verification:
        try:
            report = verify(self.audit_dir, self.anchor_dir)
        except AuditError as exc:
            return Verification(status="tampered", message=f"the audit trail cannot be verified: {exc}",
                                verified_through={}, problems=[str(exc)])
        status = _STATUS.get(report.exit_code, "tampered")
        through = {str(c["chain"]): int(c["verified_through"]) for c in report.data.get("chains", [])
                   if c.get("verified_through") is not None}
        problems = [
            f"{f.get('chain', '')} seq {f.get('seq', '?')}: {f.get('kind')}: {f.get('detail', f.get('message', ''))}".strip()
            for f in report.findings if f.get("severity") != "info"
        ]
        if status == "intact":
            message = "chain verified: " + ", ".join(f"{c} through seq {n}" for c, n in sorted(through.items()))
        else:
            message = f"audit trail {status}: " + ("; ".join(problems[:3]) or "see problems")
        return Verification(status=status, message=message, verified_through=through, problems=problems)  # type: ignore[arg-type]


__all__ = ["AuditDirSource"]
