"""`needs_plan` lets the guard skip ownership for operations that have none: it must never skip
one that `plan` would act on (a check, a rewrite or a refusal)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from graphwarden.guard import Operation, Principal
from graphwarden.policy.ownership import OwnershipDenied, needs_plan, plan
from graphwarden.policy.routes import ROUTES

BODIES: list[Any] = [None, {}, {"thread_id": "t-1", "metadata": {"a": 1}}, [{"assistant_id": "a"}], "text"]


@pytest.mark.parametrize("spec", ROUTES, ids=lambda s: f"{s.method} {s.pattern}")
def test_operations_skipped_by_needs_plan_have_an_empty_plan(spec: Any) -> None:
    params = {name: f"{name}-1" for name in re.findall(r"{(\w+)}", spec.pattern)}
    op = Operation(spec.name, spec.resource, spec.action, params)
    if needs_plan(op):
        return
    for body in BODIES:
        try:
            p = plan(op, Principal("alice"), body, "owner")
        except OwnershipDenied as exc:  # pragma: no cover - the assertion explains
            raise AssertionError(f"{spec.name}: plan refuses but needs_plan skips it: {exc}") from None
        assert not p.checks and not p.rewrite and p.keep_owner_of is None and p.invalidate is None, spec.name


def test_a_meta_read_needs_no_plan_and_a_thread_route_does() -> None:
    assert not needs_plan(Operation("meta.info", "meta", "read", {}))
    assert needs_plan(Operation("threads.get", "threads", "read", {"thread_id": "t"}))
    assert needs_plan(Operation("store.put", "store", "write", {}))
