"""Property tests: canonical fingerprints, and the store's invariants under random operation
sequences (the recorded history always replays through the transition table)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from approval_helpers import FakeClock, new_request
from graphwarden.approvals import TRANSITIONS, ApprovalError, ApprovalStore, Event, State, fingerprint
from graphwarden.guard import Operation, Principal

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6))
def test_fingerprint_ignores_key_order(body: dict[str, Any]) -> None:
    p, op = Principal("alice"), Operation("threads.create_run", "runs", "create", {"thread_id": "t"})
    forward = orjson.dumps(body)
    backward = orjson.dumps(dict(reversed(list(body.items()))))
    assert fingerprint(p, "POST", op, forward) == fingerprint(p, "POST", op, backward)


actions = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.sampled_from(["fp-a", "fp-b"])),
        st.tuples(st.just("vote"), st.sampled_from(["alice", "bob", "carol", "dave"]),
                  st.sampled_from(["approve", "deny"])),
        st.tuples(st.just("tick"), st.sampled_from([1.0, 30.0, 200.0])),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(actions, st.integers(min_value=1, max_value=2))
def test_store_invariants_under_random_sequences(seq: list[tuple[Any, ...]], required: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock()
        store = ApprovalStore(Path(tmp) / "a.sqlite3", clock=clock)
        admits: dict[str, int] = {}
        for step in seq:
            if step[0] == "request":
                got = store.lookup_or_create(new_request(step[1], approvals_required=required, expires_seconds=300))
                if got.kind == "admit":
                    assert got.approval is not None
                    admits[got.approval.id] = admits.get(got.approval.id, 0) + 1
            elif step[0] == "vote":
                pending = store.list_approvals(states=(State.PENDING,), expire=False)
                if pending:
                    try:
                        store.decide(pending[0].id, step[1], ["sre"], step[2], None)
                    except ApprovalError as exc:
                        assert exc.code in ("self_approval", "already_voted", "approval_expired")
                        if exc.code == "self_approval":
                            assert step[1] == "alice"
            else:
                clock.advance(step[1])
        all_approvals = store.list_approvals(states=None, expire=False)
        for fp in ("fp-a", "fp-b"):
            live = [a for a in all_approvals if a.fingerprint == fp and a.state in (State.PENDING, State.APPROVED)]
            assert len(live) <= 1
        for a in all_approvals:
            full = store.get(a.id, refresh=False)
            assert full is not None
            state: State | None = None
            for e in full.events:  # the history replays through the table, without gaps
                assert (e.from_state or None) == (state.value if state else None)
                assert TRANSITIONS[(state, Event(e.event))].value == e.to_state
                state = State(e.to_state)
            assert state is full.state
            assert admits.get(a.id, 0) == (1 if full.state is State.USED else 0)
            approvers = [v.approver for v in full.votes if v.decision == "approve"]
            assert "alice" not in [v.approver for v in full.votes] and len(set(approvers)) == len(approvers)
            if any(e.event == "approve" for e in full.events):
                assert len(approvers) == required
        store.close()


def test_canonical_body_never_merges_different_values() -> None:
    from graphwarden.approvals._spec import canonical_body

    assert canonical_body(b'{"b": 1, "a": [1.5, "x"]}') == canonical_body(b'{ "a" : [1.5,"x"],\n"b":1 }')
    big = b'{"n": 123456789012345678901234567890}'
    assert canonical_body(big) != canonical_body(b'{"n": 123456789012345678901234567891}')
    assert canonical_body(b'{"x": 1}') != canonical_body(b'{"x": 1.0}')
    assert canonical_body(b'{"x": 1.5e2}') == canonical_body(b'{"x": 150.0}')  # the same double
    assert canonical_body(b'{"x": 1}') != canonical_body(b'{"x": "1"}')
    # Ambiguous JSON is hashed as sent.
    assert canonical_body(b'{"a": 1, "a": 2}') == b'{"a": 1, "a": 2}'
    assert canonical_body(b'{"a": NaN}') == b'{"a": NaN}'
    assert canonical_body(b"[" * 100_000) == b"[" * 100_000
