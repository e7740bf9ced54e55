"""Strict durability in the request path, with a fake audit log: what waits for what."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphwarden.evidence.core import AuditUnavailable, Evidence, MaskingPolicy
from graphwarden.gateway import Exchange
from graphwarden.guard import Admit, Operation, Principal, Reject, RequestInfo
from graphwarden.masking import Masker


class FakeAudit:
    strict = True

    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[int, str]] = []
        self.waits: list[int] = []
        self.fail = fail

    def append(self, kind: str, body: dict[str, Any], *, stamp: bool = False) -> int:
        if self.fail:
            raise OSError("No space left on device")
        self.records.append((len(self.records), kind))
        return len(self.records) - 1

    async def wait_durable(self, seq: int) -> None:
        self.waits.append(seq)


P = Principal("alice", ("user",), auth_method="oidc")


def _evidence(audit: FakeAudit) -> Evidence:
    return Evidence(audit=audit, masker=Masker.default(), policy=MaskingPolicy([], default_requests=True,
                    default_responses=True), max_body_bytes=1 << 20)


def _exchange(method: str, op: Operation) -> Exchange:
    ex = Exchange(request_id="r1", method=method, target="/x", client_ip="127.0.0.1", started=0.0)
    ex.operation = op
    return ex


def _run(ev: Evidence, method: str, op: Operation, decision: Admit | Reject, body: bytes | None) -> Exchange:
    ex = _exchange(method, op)
    info = RequestInfo(method, "/x", (), "127.0.0.1", "r1")

    async def go() -> None:
        out = ev.on_decision(ex, info, decision, body)
        if out is not None and not isinstance(out, bytes):
            await out

    asyncio.run(go())
    return ex


def test_a_read_is_forwarded_at_once_and_its_answer_waits_for_every_record() -> None:
    audit = FakeAudit()
    ev = _evidence(audit)
    op = Operation("threads.get", "threads", "read", {"thread_id": "t"})
    ex = _run(ev, "GET", op, Admit(P, op), None)
    assert audit.waits == []  # forwarded without waiting
    filt = ev.response_filter(ex, 200, [(b"content-type", b"application/json")])
    assert filt is not None
    filt.feed(b'{"a": 1}')
    filt.finish()
    asyncio.run(ev.before_end(ex))
    assert [k for _, k in audit.records] == ["request", "response"]
    assert audit.waits == [1]  # the answer waits for the last record (and so for all before it)


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE", "PUT"])
def test_a_write_is_forwarded_only_once_its_record_is_durable(method: str) -> None:
    audit = FakeAudit()
    ev = _evidence(audit)
    op = Operation("threads.create_run", "runs", "create", {"thread_id": "t"})
    _run(ev, method, op, Admit(P, op), b'{"assistant_id": "agent", "input": {"m": "jo@example.com"}}')
    assert audit.records == [(0, "request")] and audit.waits == [0]


def test_a_refused_read_is_answered_only_once_its_record_is_durable() -> None:
    audit = FakeAudit()
    ev = _evidence(audit)
    op = Operation("threads.get", "threads", "read", {"thread_id": "t"})
    _run(ev, "GET", op, Reject(403, "forbidden", "no rule allows this", principal=P), None)
    assert audit.waits == [0]


def test_an_unwritable_trail_refuses_the_request() -> None:
    ev = _evidence(FakeAudit(fail=True))
    op = Operation("threads.get", "threads", "read", {"thread_id": "t"})
    with pytest.raises(AuditUnavailable) as err:
        _run(ev, "GET", op, Admit(P, op), None)
    assert err.value.status == 503 and "No space left" in str(err.value)


def test_records_reach_a_real_log_natively_and_through_the_general_path(tmp_path: Any) -> None:
    """`Evidence.record` appends plain dicts through the log's native encoder (`append_dict`);
    a body that encoder refuses (here a dict subclass) goes through `AuditLog.append` (orjson),
    with the same canonical result; a closed log refuses the request."""
    from graphwarden.assembly import AuditAdapter
    from graphwarden.audit import AuditLog
    from graphwarden.audit._verify import read_records

    class Sub(dict[str, Any]):
        pass

    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0", mode="batch")
    ev = Evidence(audit=AuditAdapter(log), masker=Masker.default(),
                  policy=MaskingPolicy([], default_requests=True, default_responses=True), max_body_bytes=1 << 20)
    ex = _exchange("GET", Operation("threads.get", "threads", "read", {"thread_id": "t"}))
    a = ev.record(ex, "probe", {"b": [1, 2.5, None], "a": "x"})
    b = ev.record(ex, "probe", {"b": Sub(z=1), "a": "y"})
    assert b == a + 1 and ex.notes["audit_seq"] == b
    log.close()
    bodies = [r.json() for r in read_records(tmp_path / "audit") if r.kind == "probe"]
    assert [{k: v for k, v in d.items() if k != "ts"} for d in bodies] == [
        {"a": "x", "b": [1, 2.5, None]}, {"a": "y", "b": {"z": 1}}]
    assert all(isinstance(d["ts"], str) for d in bodies)  # stamped on both paths
    with pytest.raises(AuditUnavailable) as err:
        ev.record(ex, "probe", {"a": "z"})
    assert err.value.status == 503
