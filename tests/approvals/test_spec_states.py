"""The transition table, the [approval] spec and request fingerprints."""

from __future__ import annotations

import datetime as dt

import pytest

from graphwarden.approvals import (
    TRANSITIONS,
    ApprovalSpec,
    AutoApprove,
    Event,
    IllegalTransition,
    State,
    fingerprint,
    grant_key,
    next_state,
    parse_spec,
)
from graphwarden.approvals._spec import body_summary, justification_of
from graphwarden.guard import Operation, Principal

ALICE = Principal("alice", ("analysts",))
OP = Operation("threads.create_run", "runs", "create", {"thread_id": "t1"})


def test_transition_table_is_the_documented_machine() -> None:
    assert next_state(None, Event.REQUEST) is State.PENDING
    assert next_state(State.PENDING, Event.APPROVE) is State.APPROVED
    assert next_state(State.PENDING, Event.DENY) is State.DENIED
    assert next_state(State.PENDING, Event.EXPIRE) is State.EXPIRED
    assert next_state(State.APPROVED, Event.USE) is State.USED
    assert next_state(State.APPROVED, Event.USE_GRANT) is State.APPROVED
    # Terminal states never move again.
    for terminal in (State.DENIED, State.EXPIRED, State.USED):
        for event in Event:
            assert (terminal, event) not in TRANSITIONS
            with pytest.raises(IllegalTransition):
                next_state(terminal, event)
    with pytest.raises(IllegalTransition, match="cannot use an approval that is pending"):
        next_state(State.PENDING, Event.USE)
    with pytest.raises(IllegalTransition):
        next_state(None, Event.APPROVE)


def test_spec_defaults_and_validation() -> None:
    spec = parse_spec("r1", {"approver_groups": ["sre"]})
    assert spec == ApprovalSpec(approver_groups=["sre"])
    assert spec.mode == "hold" and spec.grant == "once" and spec.approvals_required == 1
    full = parse_spec("r2", {
        "approver_groups": ["sre", "sec"], "approvals_required": 2, "justification_required": True,
        "mode": "async", "hold_seconds": 10, "expires_seconds": 60, "grant": "window", "grant_seconds": 1800,
        "grant_scope": "group", "grant_group": "analysts",
        "auto_approve": {"weekdays": ["mon"], "hours_utc": [9, 17], "assistants": ["faq"]},
    })
    assert full.auto_approve == AutoApprove(weekdays=["mon"], hours_utc=[9, 17], assistants=["faq"])

    cases = [
        ({}, "approver_groups"),
        ({"approver_groups": []}, "approver_groups: name at least one"),
        ({"approver_groups": ["a"], "mode": "later"}, "mode"),
        ({"approver_groups": ["a"], "approvals_required": 0}, "approvals_required"),
        ({"approver_groups": ["a"], "grant_scope": "group"}, "grant_group"),
        ({"approver_groups": ["a"], "typo": 1}, "unknown field `typo`"),
        ({"approver_groups": ["a"], "auto_approve": {}}, "at least one of"),
        ({"approver_groups": ["a"], "auto_approve": {"weekdays": ["moon"]}}, "unknown day"),
        ({"approver_groups": ["a"], "auto_approve": {"hours_utc": [18, 9]}}, "hours_utc"),
        ({"approver_groups": ["a"], "expires_seconds": 0}, "expires_seconds"),
        ({"approver_groups": "a"}, "approver_groups"),
    ]
    for raw, needle in cases:
        with pytest.raises(ValueError) as info:
            parse_spec("deploy", raw)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("rule 'deploy' [approval]"), message
        assert needle in message, (raw, message)


def test_fingerprint_binds_subject_method_route_and_canonical_body() -> None:
    base = fingerprint(ALICE, "POST", OP, b'{"input": {"a": 1, "b": 2}, "assistant_id": "agent"}')
    # Key order and whitespace do not matter.
    assert fingerprint(ALICE, "post", OP, b'{"assistant_id":"agent","input":{"b":2,"a":1}}') == base
    assert fingerprint(ALICE, "POST", OP, b'{"input": {"a": 1, "b": 3}, "assistant_id": "agent"}') != base
    assert fingerprint(Principal("bob", ("analysts",)), "POST", OP,
                       b'{"input": {"a": 1, "b": 2}, "assistant_id": "agent"}') != base
    assert fingerprint(ALICE, "PUT", OP, b'{"input": {"a": 1, "b": 2}, "assistant_id": "agent"}') != base
    other_thread = Operation("threads.create_run", "runs", "create", {"thread_id": "t2"})
    assert fingerprint(ALICE, "POST", other_thread, b'{"input": {"a": 1, "b": 2}, "assistant_id": "agent"}') != base
    other_op = Operation("threads.resume_run", "runs", "create", {"thread_id": "t1"})
    assert fingerprint(ALICE, "POST", other_op, b'{"input": {"a": 1, "b": 2}, "assistant_id": "agent"}') != base
    # Non-JSON bodies are hashed as sent.
    assert fingerprint(ALICE, "POST", OP, b"abc") != fingerprint(ALICE, "POST", OP, b"abd")


def test_grant_key_scopes() -> None:
    spec = ApprovalSpec(approver_groups=["sre"], grant="window", grant_scope="group", grant_group="analysts")
    bob = Principal("bob", ("analysts",))
    eve = Principal("eve", ("sales",))
    assert grant_key("r", spec, ALICE, OP, "agent") == grant_key("r", spec, bob, OP, "agent")
    assert grant_key("r", spec, ALICE, OP, "agent") != grant_key("r", spec, ALICE, OP, "other")
    assert grant_key("r", spec, eve, OP, "agent") != grant_key("r", spec, ALICE, OP, "agent")
    personal = ApprovalSpec(approver_groups=["sre"], grant="window")
    assert grant_key("r", personal, ALICE, OP, "agent") != grant_key("r", personal, bob, OP, "agent")


def test_auto_approve_conditions() -> None:
    monday_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    monday_20 = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.timezone.utc).timestamp()
    sunday_10 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    window = AutoApprove(weekdays=["mon", "tue"], hours_utc=[9, 17])
    assert window.holds(monday_10, None) == "weekday mon; hour 10 UTC in [9, 17)"
    assert window.holds(monday_20, None) is None
    assert window.holds(sunday_10, None) is None
    low_risk = AutoApprove(assistants=["faq"])
    assert low_risk.holds(sunday_10, "faq") == "low-risk assistant faq"
    assert low_risk.holds(sunday_10, "agent") is None
    assert low_risk.holds(sunday_10, None) is None


def test_justification_from_header_or_body_field_and_body_summary() -> None:
    spec = ApprovalSpec(approver_groups=["sre"])
    assert justification_of(spec, ((b"x-graphwarden-justification", b" ticket 42 "),), None) == "ticket 42"
    assert justification_of(spec, (), {"metadata": {"justification": "INC-7"}}) == "INC-7"
    assert justification_of(spec, (), {"metadata": {"justification": "  "}}) is None
    assert justification_of(spec, (), {"justification": "top"}) is None
    raw = b'{"input": {"ssn": "123-45-6789"}, "assistant_id": "agent"}'
    summary = body_summary(raw)
    assert summary["top_level_keys"] == ["assistant_id", "input"]
    assert "123-45-6789" not in repr(summary)
    assert summary["size"] == len(raw)
