"""The SQLite store: transitions, N of M, self-approval, one-time use, grants, expiry, restart,
and concurrency across threads and processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from approval_helpers import FakeClock, new_request
from graphwarden.approvals import ApprovalError, ApprovalStore, State


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "approvals.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> ApprovalStore:
    return ApprovalStore(db_path, clock=clock)


def events(store: ApprovalStore, approval_id: str) -> list[tuple[str, str | None, str, str]]:
    a = store.get(approval_id, refresh=False)
    assert a is not None
    return [(e.event, e.from_state, e.to_state, e.actor) for e in a.events]


def test_once_approval_is_used_exactly_once(store: ApprovalStore) -> None:
    first = store.lookup_or_create(new_request())
    assert first.kind == "created" and first.approval is not None
    aid = first.approval.id
    assert store.lookup_or_create(new_request()).kind == "pending"
    a, decided = store.decide(aid, "bob", ["sre"], "approve", "looks fine")
    assert decided and a.state is State.APPROVED
    used = store.lookup_or_create(new_request())
    assert used.kind == "admit" and used.approval is not None and used.approval.id == aid
    assert used.approval.state is State.USED
    # Replaying the identical request does not reuse it: a new approval starts.
    again = store.lookup_or_create(new_request())
    assert again.kind == "created" and again.approval is not None and again.approval.id != aid
    assert events(store, aid) == [
        ("request", None, "pending", "alice"),
        ("approve", "pending", "approved", "bob"),
        ("use", "approved", "used", "alice"),
    ]
    history = store.get(aid)
    assert history is not None and history.events[1].comment == "looks fine"


def test_self_approval_and_non_approvers_are_refused(store: ApprovalStore) -> None:
    aid = store.lookup_or_create(new_request(requester_groups=("analysts", "sre"))).approval.id  # type: ignore[union-attr]
    with pytest.raises(ApprovalError) as own:
        store.decide(aid, "alice", ["sre"], "approve", None)
    assert (own.value.status, own.value.code) == (403, "self_approval")
    with pytest.raises(ApprovalError) as outsider:
        store.decide(aid, "mallory", ["analysts"], "approve", None)
    assert (outsider.value.status, outsider.value.code) == (403, "not_an_approver")
    assert store.state_of(aid) is State.PENDING
    assert events(store, aid) == [("request", None, "pending", "alice")]


def test_n_of_m_needs_distinct_approvers(store: ApprovalStore) -> None:
    aid = store.lookup_or_create(new_request(approvals_required=2)).approval.id  # type: ignore[union-attr]
    a, decided = store.decide(aid, "bob", ["sre"], "approve", None)
    assert not decided and a.state is State.PENDING
    with pytest.raises(ApprovalError) as twice:
        store.decide(aid, "bob", ["sre"], "approve", None)
    assert twice.value.code == "already_voted"
    a, decided = store.decide(aid, "carol", ["sre"], "approve", None)
    assert decided and a.state is State.APPROVED
    assert [(v.approver, v.decision) for v in a.votes] == [("bob", "approve"), ("carol", "approve")]
    assert [e[0] for e in events(store, aid)] == ["request", "vote", "approve"]
    with pytest.raises(ApprovalError) as late:
        store.decide(aid, "dave", ["sre"], "deny", None)
    assert (late.value.status, late.value.code) == (409, "approval_approved")


def test_deny_is_reported_once_then_a_new_request_starts(store: ApprovalStore) -> None:
    aid = store.lookup_or_create(new_request(approvals_required=2)).approval.id  # type: ignore[union-attr]
    store.decide(aid, "bob", ["sre"], "approve", None)
    a, decided = store.decide(aid, "carol", ["sre"], "deny", "not during the freeze")
    assert decided and a.state is State.DENIED
    seen = store.lookup_or_create(new_request())
    assert seen.kind == "denied" and seen.approval is not None and seen.approval.id == aid
    fresh = store.lookup_or_create(new_request())
    assert fresh.kind == "created" and fresh.approval is not None and fresh.approval.id != aid


def test_pending_expires_and_cannot_be_approved_or_used(store: ApprovalStore, clock: FakeClock) -> None:
    aid = store.lookup_or_create(new_request(expires_seconds=60)).approval.id  # type: ignore[union-attr]
    clock.advance(61)
    with pytest.raises(ApprovalError) as late:
        store.decide(aid, "bob", ["sre"], "approve", None)
    assert (late.value.status, late.value.code) == (409, "approval_expired")
    seen = store.lookup_or_create(new_request())
    assert seen.kind == "expired" and seen.approval is not None and seen.approval.id == aid
    assert events(store, aid)[-1] == ("expire", "pending", "expired", "system")
    fresh = store.lookup_or_create(new_request())
    assert fresh.kind == "created" and fresh.approval is not None and fresh.approval.id != aid


def test_approved_once_approval_not_used_in_time_expires(store: ApprovalStore, clock: FakeClock) -> None:
    aid = store.lookup_or_create(new_request(expires_seconds=60)).approval.id  # type: ignore[union-attr]
    store.decide(aid, "bob", ["sre"], "approve", None)
    clock.advance(61)
    assert store.lookup_or_create(new_request()).kind == "expired"
    assert store.state_of(aid) is State.EXPIRED
    assert store.consume(aid, "alice", "POST", "/x") is None


def test_window_grant_covers_requests_until_it_ends(store: ApprovalStore, clock: FakeClock) -> None:
    grant = dict(grant_kind="window", grant_key="gk-1", grant_seconds=1800.0)
    aid = store.lookup_or_create(new_request("gk-1", **grant)).approval.id  # type: ignore[union-attr]
    store.decide(aid, "bob", ["sre"], "approve", "30 minutes for the migration")
    for i in range(3):
        got = store.lookup_or_create(new_request("gk-1", body_sha256=str(i) * 64, **grant))
        assert got.kind == "admit" and got.approval is not None and got.approval.id == aid
        clock.advance(500)
    assert store.state_of(aid) is State.APPROVED
    clock.advance(400)  # 1900 s after approval
    after = store.lookup_or_create(new_request("gk-1", **grant))
    assert after.kind == "created" and after.approval is not None and after.approval.id != aid
    assert store.state_of(aid) is State.EXPIRED
    assert [e[0] for e in events(store, aid)] == ["request", "approve", "use_grant", "use_grant", "use_grant", "expire"]


def test_auto_approval_is_recorded_and_used(store: ApprovalStore) -> None:
    got = store.lookup_or_create(new_request(auto_reason="low-risk assistant faq"))
    assert got.kind == "auto" and got.approval is not None and got.approval.state is State.USED
    assert events(store, got.approval.id) == [
        ("request", None, "pending", "alice"),
        ("auto_approve", "pending", "approved", "auto"),
        ("use", "approved", "used", "alice"),
    ]


def test_justification_missing_creates_nothing(store: ApprovalStore) -> None:
    got = store.lookup_or_create(new_request(justification_missing=True))
    assert got.kind == "needs_justification" and got.approval is None
    assert store.list_approvals() == []


def test_restart_keeps_pending_and_approved(db_path: Path, clock: FakeClock) -> None:
    one = ApprovalStore(db_path, clock=clock)
    pending = one.lookup_or_create(new_request("fp-a")).approval.id  # type: ignore[union-attr]
    approved = one.lookup_or_create(new_request("fp-b")).approval.id  # type: ignore[union-attr]
    one.decide(approved, "bob", ["sre"], "approve", None)
    one.close()
    two = ApprovalStore(db_path, clock=clock)
    assert two.state_of(pending) is State.PENDING
    assert two.lookup_or_create(new_request("fp-a")).kind == "pending"
    assert two.lookup_or_create(new_request("fp-b")).kind == "admit"
    assert two.lookup_or_create(new_request("fp-b")).kind == "created"


def test_two_approvers_at_once_in_threads_yield_one_decision(db_path: Path) -> None:
    for round_ in range(5):
        setup = ApprovalStore(db_path)
        aid = setup.lookup_or_create(new_request(f"fp-{round_}")).approval.id  # type: ignore[union-attr]
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def act(who: str, decision: str) -> None:
            s = ApprovalStore(db_path)
            barrier.wait()
            try:
                a, decided = s.decide(aid, who, ["sre"], decision, None)
                outcomes[who] = f"{decision}:{decided}"
            except ApprovalError as exc:
                outcomes[who] = exc.code
            finally:
                s.close()

        threads = [threading.Thread(target=act, args=("bob", "approve")),
                   threading.Thread(target=act, args=("carol", "deny"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [o for o in outcomes.values() if o.endswith(":True")]
        assert len(winners) == 1, outcomes
        loser = [o for o in outcomes.values() if not o.endswith(":True")]
        assert loser[0] in ("approval_approved", "approval_denied"), outcomes
        final = setup.get(aid)
        assert final is not None and len(final.votes) == 1
        assert [e.event for e in final.events][-1] in ("approve", "deny")


def test_one_time_approval_consumed_once_under_concurrency(db_path: Path) -> None:
    setup = ApprovalStore(db_path)
    aid = setup.lookup_or_create(new_request()).approval.id  # type: ignore[union-attr]
    setup.decide(aid, "bob", ["sre"], "approve", None)
    barrier = threading.Barrier(8)
    kinds: list[str] = []
    lock = threading.Lock()

    def replay() -> None:
        s = ApprovalStore(db_path)
        barrier.wait()
        kind = s.lookup_or_create(new_request()).kind
        with lock:
            kinds.append(kind)
        s.close()

    threads = [threading.Thread(target=replay) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert kinds.count("admit") == 1, kinds
    # Exactly one new approval was created for the others, who then found it pending.
    assert kinds.count("created") == 1 and kinds.count("pending") == 6, kinds


_VOTER = textwrap.dedent("""
    import sys, time
    from graphwarden.approvals import ApprovalStore, ApprovalError
    db, aid, who, decision, at = sys.argv[1:6]
    store = ApprovalStore(db)
    store.state_of(aid)
    while time.time() < float(at):
        pass
    try:
        a, decided = store.decide(aid, who, ["sre"], decision, None)
        print(f"{decision}:{decided}")
    except ApprovalError as exc:
        print(exc.code)
""")


def test_two_approvers_at_once_in_processes_yield_one_decision(db_path: Path) -> None:
    setup = ApprovalStore(db_path)
    aid = setup.lookup_or_create(new_request()).approval.id  # type: ignore[union-attr]
    at = str(time.time() + 1.5)
    env = dict(os.environ)
    procs = [
        subprocess.Popen([sys.executable, "-c", _VOTER, str(db_path), aid, who, decision, at],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for who, decision in (("bob", "approve"), ("carol", "deny"))
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err.decode()
        outs.append(out.decode().strip())
    assert sum(o.endswith(":True") for o in outs) == 1, outs
    final = setup.get(aid)
    assert final is not None and final.state in (State.APPROVED, State.DENIED) and len(final.votes) == 1


def test_approvals_are_per_rule(store: ApprovalStore) -> None:
    aid = store.lookup_or_create(new_request(rule="r1")).approval.id  # type: ignore[union-attr]
    store.decide(aid, "bob", ["sre"], "approve", None)
    other = store.lookup_or_create(new_request(rule="r2"))  # same request, stricter rule: not covered
    assert other.kind == "created" and other.approval is not None and other.approval.id != aid
    assert store.lookup_or_create(new_request(rule="r1")).kind == "admit"


def test_pending_is_auto_approved_once_its_condition_holds(store: ApprovalStore) -> None:
    aid = store.lookup_or_create(new_request()).approval.id  # type: ignore[union-attr]
    got = store.lookup_or_create(new_request(auto_reason="hour 10 UTC in [9, 17)"))
    assert got.kind == "auto" and got.approval is not None and got.approval.id == aid
    assert got.approval.state is State.USED
    assert [e[0] for e in events(store, aid)] == ["request", "auto_approve", "use"]
