"""Synthetic but realistic audit trails for replay tests, following docs/AUDIT_EVENTS.md.

Records are spread over two chains (two gateway workers), with increasing timestamps and
per-chain sequence numbers, the way the real writer produces them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from graphwarden.replay.source import AuditRecord, Verification

T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=timezone.utc)

ALICE = {
    "subject": "alice", "groups": ["analysts"], "auth_method": "oidc", "token_id": "jti-a1",
    "display_name": "Alice Martin", "issuer": "https://idp.example",
}
BOB = {"subject": "bob", "groups": ["approvers"], "display_name": "Bob Stone"}
CAROL = {"subject": "carol", "groups": ["approvers", "security"], "display_name": "Carol Diaz"}

HOSTILE = '</script><img src=x onerror=alert(1)><script>alert(2)</script>'


class Trail:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []
        self._seq: dict[str, int] = {}
        self._now = T0

    def at(self, ms: float) -> str:
        """Advance the clock by `ms` and return the RFC 3339 timestamp."""
        self._now += timedelta(milliseconds=ms)
        return self._now.isoformat().replace("+00:00", "Z")

    def add(self, kind: str, body: dict[str, Any], *, after_ms: float = 5.0, chain: str = "gw-0") -> AuditRecord:
        ts = self.at(after_ms)
        seq = self._seq.get(chain, 0) + 1
        self._seq[chain] = seq
        rec = AuditRecord(chain=chain, seq=seq, ts=ts, kind=kind, body={"ts": ts, **body})
        self.records.append(rec)
        return rec

    def last_seq(self) -> dict[str, int]:
        return dict(self._seq)

    def intact(self) -> Verification:
        through = self.last_seq()
        return Verification("intact", "all chains verified", through, [])

    def request(self, rid: str, path: str, *, principal: dict[str, Any] = ALICE, thread: str | None = None,
                decision: str = "allow", rule: str = "analysts-run", input_: Any = None,
                approval_id: str | None = None, status: int | None = None, resume: Any = None,
                method: str = "POST", route: str = "threads.create_run_stream", action: str = "create_run",
                chain: str = "gw-0", after_ms: float = 3.0) -> None:
        body: dict[str, Any] = {
            "request_id": rid, "method": method, "path": path, "route": route,
            "resource": "threads", "action": action, "thread_id": thread, "run_id": None,
            "assistant_id": "agent", "principal": principal, "client_ip": "10.1.2.3",
            "decision": decision, "rule": rule, "reason": f"matched {rule}",
            "approval_id": approval_id, "stream_mode": ["values"], "injected_modes": ["updates"],
            "input": input_,
        }
        if status is not None:
            body["status"] = status
        if resume is not None:
            body["resume"] = resume
        self.add("request", body, chain=chain, after_ms=after_ms)

    def response(self, rid: str, *, status: int = 200, run_status: str | None = "success",
                 thread: str | None = None, run: str | None = None, duration_ms: float = 100.0,
                 chain: str = "gw-0", after_ms: float = 5.0, output: Any = None) -> None:
        self.add("response", {
            "request_id": rid, "status": status, "bytes_in": 120, "bytes_out": 5321,
            "duration_ms": duration_ms, "outcome": "ok", "thread_id": thread, "run_id": run,
            "run_status": run_status, "output": output, "events": 17,
        }, chain=chain, after_ms=after_ms)

    def step(self, rid: str, thread: str, run: str, step: int, node: str, data: Any, *,
             source: str = "stream", chain: str = "gw-0", after_ms: float = 40.0) -> None:
        self.add("step", {
            "request_id": rid, "thread_id": thread, "run_id": run, "source": source,
            "node": node, "step": step, "namespace": [], "data": data,
        }, chain=chain, after_ms=after_ms)


def interrupted_then_approved_resume() -> Trail:
    """Thread T1: run R1 streams 2 steps and interrupts at `review`; alice's resume needs an
    approval (pending, bob votes, carol approves), the retried resume starts run R2, which
    streams steps 3 and 4 and succeeds. Plus a history duplicate of step 1 (dedup)."""
    t = Trail()
    t.request("req-1", "/threads/T1/runs/stream", thread="T1",
              input_={"messages": [{"role": "user", "content": "refund order 42 to <EMAIL>"}]})
    t.add("run", {"request_id": "req-1", "thread_id": "T1", "run_id": "R1", "assistant_id": "agent"})
    t.step("req-1", "T1", "R1", 1, "ingest", {"order": 42, "customer": "<EMAIL>"})
    t.step("req-1", "T1", "R1", 2, "lookup", {"amount": 129.5, "card": "<CREDIT_CARD>"}, after_ms=120)
    t.add("interrupt", {"request_id": "req-1", "thread_id": "T1", "run_id": "R1", "node": "review",
                        "value": {"question": "approve refund of 129.50?"}}, after_ms=30)
    t.response("req-1", run_status="interrupted", thread="T1", run="R1", duration_ms=260.0)
    t.step("req-1", "T1", "R1", 1, "ingest", {"order": 42, "customer": "<EMAIL>"}, source="history", after_ms=2)
    # Resume attempt: held for approval.
    t.request("req-2", "/threads/T1/runs/stream", thread="T1", decision="approval_pending",
              rule="refunds-need-approval", approval_id="apr_1", status=202,
              resume={"value": "yes"}, chain="gw-1", after_ms=4000)
    t.add("approval", {"approval_id": "apr_1", "transition": "created", "from": None, "to": "pending",
                       "requester": ALICE, "rule": "refunds-need-approval", "fingerprint": "fp-77",
                       "request_id": "req-2", "thread_id": "T1", "assistant_id": "agent"}, chain="gw-1")
    t.response("req-2", status=202, run_status=None, thread="T1", duration_ms=3.0, chain="gw-1")
    t.add("approval", {"approval_id": "apr_1", "transition": "vote", "from": "pending", "to": "pending",
                       "actor": BOB, "comment": "amount matches invoice"}, after_ms=60000)
    t.add("approval", {"approval_id": "apr_1", "transition": "approved", "from": "pending", "to": "approved",
                       "actor": CAROL, "comment": "ok, customer <PHONE_NUMBER> confirmed"}, after_ms=30000)
    # Retried resume: admitted with the approval, starts run R2.
    t.request("req-3", "/threads/T1/runs/stream", thread="T1", approval_id="apr_1",
              rule="refunds-need-approval", resume={"value": "yes"}, after_ms=5000)
    t.add("approval", {"approval_id": "apr_1", "transition": "used", "from": "approved", "to": "used",
                       "request_id": "req-3"})
    t.add("run", {"request_id": "req-3", "thread_id": "T1", "run_id": "R2", "assistant_id": "agent"})
    t.add("resume", {"request_id": "req-3", "thread_id": "T1", "run_id": "R2", "value": "yes"})
    t.step("req-3", "T1", "R2", 3, "review", {"approved": True})
    t.step("req-3", "T1", "R2", 4, "refund", {"refund_id": "rf-9", "to": "<EMAIL>"}, after_ms=310)
    t.response("req-3", thread="T1", run="R2", duration_ms=420.0,
               output={"digest": "ab" * 32, "bytes": 2048})
    return t


def wait_run_from_history() -> Trail:
    """Thread T2: a /runs/wait run; steps collected from the thread history at the end."""
    t = Trail()
    t.request("req-10", "/threads/T2/runs/wait", thread="T2", route="threads.create_run_wait",
              input_={"messages": [{"role": "user", "content": "summarise ticket 7"}]})
    t.add("run", {"request_id": "req-10", "thread_id": "T2", "run_id": "R10", "assistant_id": "agent"})
    t.response("req-10", thread="T2", run="R10", duration_ms=900.0, after_ms=900,
               output={"summary": "ticket about <PERSON>"})
    # History collection happens after the run ended; timestamps are the checkpoints' times.
    for n, node in ((1, "fetch"), (2, "summarise"), (3, "format")):
        t.step("req-10", "T2", "R10", n, node, {"n": n}, source="history", after_ms=1)
    return t


def failed_run() -> Trail:
    t = Trail()
    t.request("req-20", "/threads/T3/runs/stream", thread="T3", input_={"x": 1})
    t.add("run", {"request_id": "req-20", "thread_id": "T3", "run_id": "R20", "assistant_id": "agent"})
    t.step("req-20", "T3", "R20", 1, "parse", {"ok": True})
    t.add("error", {"request_id": "req-20", "thread_id": "T3", "run_id": "R20", "error": "ValueError",
                    "message": "bad customer record for <EMAIL> (<US_SSN>)"}, after_ms=50)
    t.response("req-20", status=200, run_status="error", thread="T3", run="R20", duration_ms=75.0)
    return t


def hostile_run() -> Trail:
    """Every free-text field carries markup that would run script if not escaped."""
    t = Trail()
    evil_principal = {**ALICE, "display_name": HOSTILE, "groups": [HOSTILE]}
    t.request("req-30", "/threads/T4/runs/stream", thread="T4", principal=evil_principal,
              input_={"content": HOSTILE}, approval_id="apr_9", rule=HOSTILE)
    t.add("approval", {"approval_id": "apr_9", "transition": "approved", "from": "pending", "to": "approved",
                       "actor": {"subject": HOSTILE}, "comment": HOSTILE})
    t.add("run", {"request_id": "req-30", "thread_id": "T4", "run_id": "R30", "assistant_id": "agent"})
    t.step("req-30", "T4", "R30", 1, HOSTILE, {"html": HOSTILE, "k": '"><svg onload=alert(3)>'})
    t.add("error", {"request_id": "req-30", "thread_id": "T4", "run_id": "R30", "error": HOSTILE,
                    "message": "\x1b[2J\x1b]0;owned\x07" + HOSTILE})
    t.response("req-30", run_status="error", thread="T4", run="R30")
    return t
