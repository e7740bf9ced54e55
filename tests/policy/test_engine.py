"""The policy engine and the ownership planner as pure functions."""

from __future__ import annotations

import json

import pytest

from graphwarden.guard import Principal
from graphwarden.policy.engine import BodyError, Effect, parse_policy, read_facts
from graphwarden.policy.ownership import OwnershipDenied, plan
from graphwarden.policy.routes import RouteTable

ROUTES = RouteTable()
ALICE = Principal("alice", ("user",))

POLICY = parse_policy("""
version = 1
[[rules]]
id = "resume-needs-approval"
groups = ["user"]
when = { resume = true }
effect = "approval"
[rules.approval]
approvers = ["lead"]
[[rules]]
id = "only-agent"
groups = ["user"]
operations = ["threads.*run*", "runs.*"]
assistants = ["agent"]
effect = "allow"
[[rules]]
id = "no-other-graphs"
groups = ["user"]
operations = ["threads.*run*", "runs.*"]
effect = "deny"
reason = "only the agent graph"
[[rules]]
id = "bob-reads"
subjects = ["bob"]
actions = ["read"]
effect = "allow"
""", "test")


def decide(principal: Principal, method: str, target: str, body: object = None) -> tuple[Effect, str | None]:
    op = ROUTES.classify(method, target)
    facts = read_facts(op, json.dumps(body).encode() if body is not None else None)
    d = POLICY.decide(principal, op, facts)
    return d.effect, d.rule


def test_first_match_wins_and_default_deny() -> None:
    assert decide(ALICE, "POST", "/threads/t/runs", {"assistant_id": "agent"}) == (Effect.ALLOW, "only-agent")
    assert decide(ALICE, "POST", "/threads/t/runs", {"assistant_id": "other"}) == (Effect.DENY, "no-other-graphs")
    assert decide(ALICE, "POST", "/threads/t/runs", {"assistant_id": "agent", "command": {"resume": "ok"}}) == (
        Effect.APPROVAL, "resume-needs-approval")
    assert decide(ALICE, "GET", "/threads/t") == (Effect.DENY, None)
    assert decide(Principal("bob"), "GET", "/threads/t") == (Effect.ALLOW, "bob-reads")
    assert decide(Principal("bob"), "DELETE", "/threads/t") == (Effect.DENY, None)


def test_batches_must_name_only_allowed_assistants() -> None:
    assert decide(ALICE, "POST", "/runs/batch", [{"assistant_id": "agent"}, {"assistant_id": "agent"}])[0] is Effect.ALLOW
    assert decide(ALICE, "POST", "/runs/batch", [{"assistant_id": "agent"}, {"assistant_id": "evil"}])[1] == "no-other-graphs"
    assert decide(ALICE, "POST", "/runs/batch", [])[1] == "no-other-graphs"  # names no assistant


def test_decisions_are_memoised_per_policy_but_not_shared() -> None:
    op = ROUTES.classify("GET", "/threads/t")
    facts = read_facts(op, None)
    first = POLICY.decide(Principal("bob"), op, facts)
    assert POLICY.decide(Principal("bob"), op, facts) is first
    assert POLICY.decide(Principal("bob", ("user",)), op, facts) is not first


def test_bad_json_body() -> None:
    with pytest.raises(BodyError):
        read_facts(ROUTES.classify("POST", "/threads"), b"{")


def test_plan_forces_owner_and_filters() -> None:
    op = ROUTES.classify("POST", "/threads/search")
    p = plan(op, ALICE, {"metadata": {"graphwarden_owner": "bob", "x": 1}, "limit": 5}, "graphwarden_owner")
    assert p.rewrite and p.body == {"metadata": {"graphwarden_owner": "alice", "x": 1}, "limit": 5}
    p = plan(ROUTES.classify("POST", "/threads"), ALICE, None, "graphwarden_owner")
    assert p.body == {"metadata": {"graphwarden_owner": "alice"}}
    p = plan(ROUTES.classify("POST", "/threads"), ALICE, {"thread_id": "t9"}, "graphwarden_owner")
    assert [(c.kind, c.id, c.may_be_missing) for c in p.checks] == [("threads", "t9", True)]
    p = plan(ROUTES.classify("POST", "/store/items/search"), ALICE, {}, "graphwarden_owner")
    assert p.body == {"namespace_prefix": ["alice"]}


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "/threads/prune", {"thread_ids": ["t"]}),
        ("POST", "/runs/cancel", {"status": "all"}),
        ("POST", "/runs/stream", {"assistant_id": "agent", "on_completion": "keep"}),
        ("PUT", "/store/items", {"namespace": ["bob"], "key": "k", "value": {}}),
        ("POST", "/store/namespaces", {"prefix": ["bob"]}),
        ("POST", "/runs/batch", {"not": "a list"}),
    ],
)
def test_plan_refuses_cross_owner_reach(method: str, target: str, body: object) -> None:
    with pytest.raises(OwnershipDenied):
        plan(ROUTES.classify(method, target), ALICE, body, "graphwarden_owner")


def test_every_thread_scoped_route_checks_the_thread() -> None:
    for spec in ROUTES_WITH_THREAD:
        target = spec.pattern.replace("{thread_id}", "T").replace("{run_id}", "R")
        op = ROUTES.classify(spec.method, target)
        assert op.params.get("thread_id") == "T", spec
        p = plan(op, ALICE, {} if op.body_limit_bytes else None, "graphwarden_owner")
        assert ("threads", "T") in [(c.kind, c.id) for c in p.checks], spec


from graphwarden.policy.routes import ROUTES as _ALL  # noqa: E402

ROUTES_WITH_THREAD = [r for r in _ALL if "{thread_id}" in r.pattern]

