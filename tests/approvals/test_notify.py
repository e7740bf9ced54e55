"""Notifications against real local HTTP servers: retries with backoff, Slack format, and a dead
or hanging webhook never blocking a request nor losing the approval."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from approval_helpers import Hook
from graphwarden.approvals import ApprovalService, ApprovalStore, Notifier, NotifySettings, State
from graphwarden.guard import ApprovalNeeded, Operation, Principal, Reject, RequestInfo

ALICE = Principal("alice", ("analysts",))
RUN = Operation("threads.create_run", "runs", "create", {"thread_id": "t1"})
INFO = RequestInfo("POST", "/threads/t1/runs", (), "127.0.0.1", "req-9")
NEEDED = ApprovalNeeded("risky-run", {"approver_groups": ["sre"], "mode": "async"})


@pytest.fixture
def flaky() -> Iterator[Hook]:
    h = Hook(fail_first=2)
    yield h
    h.close()


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/nobody-listens"


def test_webhook_retried_with_backoff_until_it_succeeds(tmp_path: Path, flaky: Hook) -> None:
    slack = Hook()
    notifier = Notifier(NotifySettings(webhook_urls=(flaky.url,), slack_webhook_url=slack.url, timeout_s=2,
                                       retries=3, backoff_s=0.1, public_base_url="https://gw.example.com"))
    service = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"), notifier=notifier)

    async def scenario() -> str:
        decision = await service.check(INFO, ALICE, RUN, b"{}", NEEDED)
        assert isinstance(decision, Reject)
        aid = str(decision.extra["approval_id"])
        await service.decide(aid, "bob", ["sre"], "deny", "no")
        await notifier.drain(10)
        return aid

    try:
        aid = asyncio.run(scenario())
    finally:
        service.close()
        slack.close()
    kinds = [body["type"] for _, body in flaky.received]
    # The first two attempts failed with 503 and were retried; both notices arrived in the end.
    assert len(flaky.received) == 4
    assert sorted(kinds[2:]) == ["approval.denied", "approval.requested"]
    assert notifier.delivered == 4 and notifier.failed == 0
    requested = next(b for _, b in flaky.received if b["type"] == "approval.requested")
    assert requested["approval"]["approval_id"] == aid
    assert requested["url"] == f"https://gw.example.com/_graphwarden/approvals/{aid}"
    texts = [b["text"] for _, b in slack.received]
    assert len(texts) == 2 and all(set(b) == {"text"} for _, b in slack.received)
    assert any("Approval " + aid + " needed: alice" in t for t in texts)
    assert any("denied by bob: no" in t for t in texts)


def test_backoff_spacing(tmp_path: Path) -> None:
    hook = Hook(fail_first=3)
    notifier = Notifier(NotifySettings(webhook_urls=(hook.url,), timeout_s=2, retries=3, backoff_s=0.2))
    service = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"), notifier=notifier)

    async def scenario() -> None:
        await service.check(INFO, ALICE, RUN, b"{}", NEEDED)
        await notifier.drain(10)

    try:
        asyncio.run(scenario())
    finally:
        service.close()
        hook.close()
    times = [t for t, _ in hook.received]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 4 and notifier.delivered == 1
    # 0.2, 0.4, 0.8 s between attempts (exponential).
    assert gaps[0] >= 0.18 and gaps[1] >= 0.38 and gaps[2] >= 0.78, gaps


def test_dead_and_hanging_webhooks_never_block_nor_lose_the_approval(tmp_path: Path) -> None:
    hanging = Hook(delay_s=3.0)
    notifier = Notifier(NotifySettings(webhook_urls=(dead_url(), hanging.url), timeout_s=1.5, retries=1,
                                       backoff_s=0.05))
    service = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"), notifier=notifier)

    async def scenario() -> tuple[float, str]:
        t0 = time.monotonic()
        decision = await service.check(INFO, ALICE, RUN, b"{}", NEEDED)
        elapsed = time.monotonic() - t0
        assert isinstance(decision, Reject) and decision.status == 202
        await notifier.drain(10)
        return elapsed, str(decision.extra["approval_id"])

    try:
        elapsed, aid = asyncio.run(scenario())
    finally:
        service.close()
        hanging.close()
    assert elapsed < 1.0, elapsed  # the 1.5 s timeouts and the 3 s hang happen in the background
    assert notifier.failed == 2 and notifier.delivered == 0 and notifier.attempts == 4
    assert ApprovalStore(tmp_path / "a.sqlite3").state_of(aid) is State.PENDING


def test_sweeper_expires_each_approval_once_across_gateways_and_notifies(tmp_path: Path) -> None:
    hook = Hook()
    settings = NotifySettings(webhook_urls=(hook.url,), timeout_s=2, retries=0)
    one = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"), notifier=Notifier(settings))
    two = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"), notifier=Notifier(settings))
    short = ApprovalNeeded("risky-run", {"approver_groups": ["sre"], "mode": "async", "expires_seconds": 0.3})

    async def scenario() -> tuple[int, int, str]:
        decision = await one.check(INFO, ALICE, RUN, b"{}", short)
        assert isinstance(decision, Reject)
        await asyncio.sleep(0.4)
        counts = await asyncio.gather(one.sweep(), two.sweep())
        await one.notifier.drain(5)
        await two.notifier.drain(5)
        return counts[0], counts[1], str(decision.extra["approval_id"])

    try:
        a, b, aid = asyncio.run(scenario())
    finally:
        one.close()
        two.close()
        hook.close()
    assert sorted((a, b)) == [0, 1]
    assert [body["type"] for _, body in hook.received] == ["approval.requested", "approval.expired"]
    assert ApprovalStore(tmp_path / "a.sqlite3").state_of(aid) is State.EXPIRED


def test_readiness_reports_an_unreadable_store(tmp_path: Path) -> None:
    service = ApprovalService(ApprovalStore(tmp_path / "a.sqlite3"))
    assert service.readiness() is None
    service.store.close()
    (tmp_path / "a.sqlite3").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"a.sqlite3{suffix}").unlink(missing_ok=True)
    problem = service.readiness()
    assert problem is not None and "approval store" in problem
