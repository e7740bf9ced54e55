"""ApprovalService as the policy guard sees it: hold, async, justification, auto-approval, grants,
decisions from another process, and the approval API handlers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from graphwarden.approvals import ApprovalHandlers, ApprovalService, ApprovalStore, State
from graphwarden.guard import Admit, ApprovalNeeded, Operation, Principal, Reject, RequestInfo

ALICE = Principal("alice", ("analysts",), auth_method="test")
BOB = Principal("bob", ("sre",), auth_method="test")
CAROL = Principal("carol", ("sre",), auth_method="test")
EVE = Principal("eve", ("sales",), auth_method="test")
RUN = Operation("threads.create_run", "runs", "create", {"thread_id": "t1"}, body_limit_bytes=1 << 20)
BODY = b'{"assistant_id": "agent", "input": {"text": "drop table customers"}}'


def info(method: str = "POST", target: str = "/threads/t1/runs/wait", headers: tuple[tuple[bytes, bytes], ...] = ()
         ) -> RequestInfo:
    return RequestInfo(method=method, target=target, headers=headers, client_host="127.0.0.1", request_id="req-1")


def needed(**spec: Any) -> ApprovalNeeded:
    return ApprovalNeeded(rule="risky-run", spec={"approver_groups": ["sre"], **spec})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def service(tmp_path: Path) -> ApprovalService:
    svc = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"), hold_seconds=5, poll_interval_s=0.2)
    yield svc
    svc.close()


def test_validate_spec_raises_one_line(service: ApprovalService) -> None:
    service.validate_spec("ok", {"approver_groups": ["sre"]})
    with pytest.raises(ValueError, match=r"^rule 'bad' \[approval\] at mode: "):
        service.validate_spec("bad", {"approver_groups": ["sre"], "mode": "sometimes"})


def test_hold_is_released_by_an_approval_at_once(service: ApprovalService) -> None:
    service.poll_interval_s = 3.0  # a release well under this can only be the in-process wake-up

    async def scenario() -> tuple[Any, float]:
        held = asyncio.create_task(service.check(info(), ALICE, RUN, BODY, needed(hold_seconds=10)))
        await asyncio.sleep(0.3)
        assert not held.done()
        pending = await service.list_approvals((State.PENDING,))
        assert len(pending) == 1
        t0 = time.monotonic()
        await service.decide(pending[0].id, "bob", ["sre"], "approve", "go")
        decision = await held
        return decision, time.monotonic() - t0

    decision, latency = run(scenario())
    assert isinstance(decision, Admit) and decision.approval_id and decision.rule == "risky-run"
    assert latency < 1.0  # woken in-process, not by the 3 s poll
    assert service.store.state_of(decision.approval_id) is State.USED


def test_hold_sees_a_deny_and_a_decision_made_by_another_process(service: ApprovalService, tmp_path: Path) -> None:
    other = ApprovalStore(tmp_path / "a.sqlite3")  # another gateway / the CLI: no in-process wake-up

    async def scenario() -> Any:
        held = asyncio.create_task(service.check(info(), ALICE, RUN, BODY, needed(hold_seconds=10)))
        await asyncio.sleep(0.3)
        (a,) = other.list_approvals(states=(State.PENDING,))
        other.decide(a.id, "bob", ["sre"], "deny", "not today")
        return await asyncio.wait_for(held, 2)

    decision = run(scenario())
    assert isinstance(decision, Reject) and decision.status == 403 and decision.code == "approval_denied"
    assert "by bob: not today" in decision.reason
    # The deny was reported by the hold; the identical request starts a new approval.
    again = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
    assert isinstance(again, Reject) and again.status == 202 and again.extra["approval_id"] != decision.extra["approval_id"]


def test_hold_timeout_answers_403_pending_and_the_approval_survives(service: ApprovalService) -> None:
    t0 = time.monotonic()
    decision = run(service.check(info(), ALICE, RUN, BODY, needed(hold_seconds=0.5)))
    assert 0.45 < time.monotonic() - t0 < 2
    assert isinstance(decision, Reject) and (decision.status, decision.code) == (403, "approval_pending")
    aid = str(decision.extra["approval_id"])
    assert service.store.state_of(aid) is State.PENDING
    assert decision.extra["status_url"] == f"/_graphwarden/approvals/{aid}"


def test_hold_ends_with_expiry(service: ApprovalService) -> None:
    decision = run(service.check(info(), ALICE, RUN, BODY, needed(hold_seconds=5, expires_seconds=0.4)))
    assert isinstance(decision, Reject) and (decision.status, decision.code) == (403, "approval_expired")


def test_async_mode_202_then_exactly_once(service: ApprovalService) -> None:
    first = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
    assert isinstance(first, Reject) and first.status == 202 and first.code == "approval_pending"
    assert first.headers == ((b"retry-after", b"5"),)
    aid = str(first.extra["approval_id"])
    second = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
    assert isinstance(second, Reject) and second.extra["approval_id"] == aid
    run(service.decide(aid, "bob", ["sre"], "approve", None))
    # A different body is a different request: not covered.
    other = run(service.check(info(), ALICE, RUN, BODY.replace(b"customers", b"orders"), needed(mode="async")))
    assert isinstance(other, Reject) and other.extra["approval_id"] != aid
    go = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
    assert isinstance(go, Admit) and go.approval_id == aid
    replay = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
    assert isinstance(replay, Reject) and replay.status == 202 and replay.extra["approval_id"] != aid


def test_justification_required(service: ApprovalService) -> None:
    spec = needed(mode="async", justification_required=True)
    missing = run(service.check(info(), ALICE, RUN, BODY, spec))
    assert isinstance(missing, Reject) and (missing.status, missing.code) == (400, "justification_required")
    assert "x-graphwarden-justification" in missing.reason and "metadata.justification" in missing.reason
    assert service.store.list_approvals(states=None) == []
    with_header = run(service.check(info(headers=((b"x-graphwarden-justification", b"INC-42 cleanup"),)),
                                    ALICE, RUN, BODY, spec))
    assert isinstance(with_header, Reject) and with_header.status == 202
    a = service.store.get(str(with_header.extra["approval_id"]))
    assert a is not None and a.justification == "INC-42 cleanup" and a.events[0].comment == "INC-42 cleanup"
    body_field = b'{"assistant_id": "agent", "metadata": {"justification": "weekly report"}}'
    in_body = run(service.check(info(), ALICE, RUN, body_field, spec))
    assert isinstance(in_body, Reject) and in_body.status == 202


def test_auto_approve_for_low_risk_assistant(service: ApprovalService) -> None:
    spec = needed(mode="async", auto_approve={"assistants": ["faq"]})
    auto = run(service.check(info(), ALICE, RUN, b'{"assistant_id": "faq", "input": {}}', spec))
    assert isinstance(auto, Admit) and auto.approval_id
    a = service.store.get(auto.approval_id)
    assert a is not None and a.state is State.USED and a.events[1].actor == "auto"
    manual = run(service.check(info(), ALICE, RUN, BODY, spec))
    assert isinstance(manual, Reject) and manual.status == 202


def test_group_window_grant(service: ApprovalService) -> None:
    spec = needed(mode="async", grant="window", grant_seconds=60, grant_scope="group", grant_group="analysts")
    first = run(service.check(info(), ALICE, RUN, BODY, spec))
    assert isinstance(first, Reject)
    run(service.decide(str(first.extra["approval_id"]), "bob", ["sre"], "approve", "30 min"))
    dave = Principal("dave", ("analysts",))
    for who, body in ((ALICE, BODY), (dave, b'{"assistant_id": "agent", "input": {"text": "other"}}')):
        ok = run(service.check(info(), who, RUN, body, spec))
        assert isinstance(ok, Admit) and ok.approval_id == first.extra["approval_id"]
    other_assistant = run(service.check(info(), ALICE, RUN, b'{"assistant_id": "billing"}', spec))
    assert isinstance(other_assistant, Reject) and other_assistant.status == 202
    outsider = run(service.check(info(), EVE, RUN, BODY, spec))
    assert isinstance(outsider, Reject) and outsider.status == 202


# -- the API handlers ---------------------------------------------------------------------------


def call(handler: Any, principal: Principal, method: str, target: str, params: dict[str, str],
         body: bytes | None = None) -> tuple[int, Any]:
    op = Operation("gateway.approvals.x", "gateway", "x", params)
    resp = run(handler(info(method, target), principal, op, body))
    return resp.status, orjson.loads(resp.body)


def test_api_authorisation_and_masking(service: ApprovalService) -> None:
    service.mask = lambda b: b.replace(b"customers", b"[MASKED]")
    first = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async", approvals_required=2)))
    aid = str(first.extra["approval_id"])
    h = ApprovalHandlers(service)
    # Listing: approvers see it, the requester sees their own, outsiders see nothing.
    status, body = call(h.list, BOB, "GET", "/_graphwarden/approvals", {})
    assert status == 200 and [a["approval_id"] for a in body["approvals"]] == [aid]
    assert body["approvals"][0]["can_act"] is True
    status, body = call(h.list, ALICE, "GET", "/_graphwarden/approvals", {})
    assert [a["approval_id"] for a in body["approvals"]] == [aid] and body["approvals"][0]["can_act"] is False
    assert call(h.list, EVE, "GET", "/_graphwarden/approvals", {})[1] == {"approvals": []}
    assert call(h.list, BOB, "GET", "/_graphwarden/approvals?state=bogus", {})[0] == 400
    # Show: masked body, never raw; outsiders get 404.
    status, body = call(h.show, BOB, "GET", f"/_graphwarden/approvals/{aid}", {"approval_id": aid})
    assert status == 200
    assert body["request"]["body"]["masked"]["input"]["text"] == "drop table [MASKED]"
    assert "customers" not in orjson.dumps(body).decode()
    assert call(h.show, EVE, "GET", "", {"approval_id": aid})[0] == 404
    assert call(h.show, BOB, "GET", "", {"approval_id": "apr_nope"})[0] == 404
    # Deciding: requester refused, outsider 404, bad body 400, N of M.
    status, body = call(h.approve, ALICE, "POST", "", {"approval_id": aid}, b"{}")
    assert (status, body["error"]) == (403, "self_approval")
    assert call(h.approve, EVE, "POST", "", {"approval_id": aid}, b"{}")[0] == 404
    assert call(h.approve, BOB, "POST", "", {"approval_id": aid}, b"not json")[0] == 400
    assert call(h.approve, BOB, "POST", "", {"approval_id": aid}, b'{"comment": 3}')[0] == 400
    status, body = call(h.approve, BOB, "POST", "", {"approval_id": aid}, b'{"comment": "ok by me"}')
    assert status == 200 and body["decided"] is False and body["approval"]["approvals_given"] == 1
    status, body = call(h.approve, BOB, "POST", "", {"approval_id": aid}, None)
    assert (status, body["error"]) == (409, "already_voted")
    status, body = call(h.approve, CAROL, "POST", "", {"approval_id": aid}, b"")
    assert status == 200 and body["decided"] is True and body["approval"]["state"] == "approved"
    assert [e["event"] for e in body["approval"]["events"]] == ["request", "vote", "approve"]
    status, body = call(h.deny, CAROL, "POST", "", {"approval_id": aid}, b"")
    assert (status, body["error"]) == (409, "approval_approved")


def test_body_without_mask_shows_only_hash_size_and_keys(service: ApprovalService) -> None:
    first = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
    a = service.store.get(str(first.extra["approval_id"]))
    assert a is not None
    assert a.body_view == {"sha256": a.body_sha256, "size": len(BODY), "json": True,
                           "top_level_keys": ["assistant_id", "input"]}
    assert b"drop table" not in orjson.dumps(a.to_json())


def test_unread_body_fails_closed(service: ApprovalService) -> None:
    with_body = info(headers=((b"content-length", b"12"),))
    decision = run(service.check(with_body, ALICE, RUN, None, needed(mode="async")))
    assert isinstance(decision, Reject) and (decision.status, decision.code) == (500, "approval_misconfigured")
    no_body = info(method="DELETE", target="/threads/t1", headers=((b"content-length", b"0"),))
    delete = Operation("threads.delete", "threads", "delete", {"thread_id": "t1"})
    decision = run(service.check(no_body, ALICE, delete, None, needed(mode="async")))
    assert isinstance(decision, Reject) and decision.status == 202


def test_observers_see_every_step(service: ApprovalService) -> None:
    seen: list[tuple[str, str]] = []
    service.observers.append(lambda kind, a: seen.append((kind, a.state.value)))
    service.observers.append(lambda kind, a: 1 / 0)  # a broken observer changes nothing
    first = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async", approvals_required=2)))
    aid = str(first.extra["approval_id"])
    run(service.decide(aid, "bob", ["sre"], "approve", None))
    run(service.decide(aid, "carol", ["sre"], "approve", None))
    assert isinstance(run(service.check(info(), ALICE, RUN, BODY, needed(mode="async", approvals_required=2))), Admit)
    assert seen == [("approval.requested", "pending"), ("approval.vote", "pending"),
                    ("approval.approved", "approved"), ("approval.used", "used")]


def test_store_failure_fails_closed_with_503(tmp_path: Path) -> None:
    service = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"))
    service.store.close()
    (tmp_path / "a.sqlite3").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"a.sqlite3{suffix}").unlink(missing_ok=True)
    try:
        decision = run(service.check(info(), ALICE, RUN, BODY, needed(mode="async")))
        assert isinstance(decision, Reject) and (decision.status, decision.code) == (503, "approvals_unavailable")
        handlers = ApprovalHandlers(service).as_local_handlers()
        resp = run(handlers["gateway.approvals.list"](info("GET", "/_graphwarden/approvals"), BOB,
                                                      Operation("gateway.approvals.list", "gateway", "list"), None))
        assert resp.status == 503 and orjson.loads(resp.body)["error"] == "approvals_unavailable"
    finally:
        service.close()
