"""Helpers shared by the approvals tests."""
from __future__ import annotations

from graphwarden.approvals import ApprovalStore, NewApproval


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_request(fingerprint: str = "fp-1", **kw: object) -> NewApproval:
    base: dict[str, object] = dict(
        rule="risky-run", fingerprint=fingerprint, grant_kind="once", grant_key=None, requester="alice",
        requester_groups=("analysts",), method="POST", target="/threads/t1/runs/wait",
        operation="threads.create_run", params={"thread_id": "t1"}, assistant_id="agent",
        body_sha256="0" * 64, body_size=10, body_view={"top_level_keys": ["input"]}, justification=None,
        approver_groups=("sre",), approvals_required=1, mode="hold", expires_seconds=600.0,
        grant_seconds=1800.0,
    )
    base.update(kw)
    return NewApproval(**base)  # type: ignore[arg-type]
