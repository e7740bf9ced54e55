"""A stand-in for the policy guard (issue 5) used by the end-to-end approval tests.

Identity: `x-test-user` / `x-test-groups` headers, or `Authorization: Bearer user:group1,group2`
(the CLI's --token). Routes: run creation (stateful and stateless, plain/wait/stream) and the
gateway's approval API; everything else passes. Policy: `rule(op, body)` returns the
ApprovalNeeded to apply, or None to allow.

Swapping in the real guard: build `ApprovalService.from_config(config)`, give it to the policy
guard as its `ApprovalGate`, and call `graphwarden.approvals.install(gateway, service)` from a
gateway hook. The tests only depend on `ApprovalTestGuard.service` and on the HTTP surface.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from graphwarden.approvals import ApprovalService
from graphwarden.guard import Admit, ApprovalNeeded, Decision, Operation, Principal, Reject, RequestInfo

Rule = Callable[[Operation, bytes | None], ApprovalNeeded | None]

_RUN = re.compile(r"^/threads/(?P<thread_id>[^/]+)/runs(?:/(?:wait|stream))?$")
_STATELESS = re.compile(r"^/runs(?:/(?:wait|stream))?$")
_API = re.compile(r"^/_graphwarden/approvals(?:/(?P<approval_id>[^/]+)(?:/(?P<action>approve|deny))?)?$")
BODY_LIMIT_BYTES = 1 << 20


def always(spec: dict[str, object], rule: str = "risky-run") -> Rule:
    return lambda op, body: ApprovalNeeded(rule, spec) if op.resource == "runs" else None


def on_resume(spec: dict[str, object], rule: str = "gated-resume") -> Rule:
    """Only runs that resume an interrupted thread (`command.resume` in the body) need approval."""

    def rule_fn(op: Operation, body: bytes | None) -> ApprovalNeeded | None:
        if op.resource != "runs" or not body:
            return None
        parsed = orjson.loads(body)
        command = parsed.get("command") if isinstance(parsed, dict) else None
        return ApprovalNeeded(rule, spec) if isinstance(command, dict) and "resume" in command else None

    return rule_fn


class ApprovalTestGuard:
    def __init__(self, service: ApprovalService, rule: Rule) -> None:
        self.service = service
        self.rule = rule

    def classify(self, info: RequestInfo) -> Operation:
        path = info.target.partition("?")[0]
        if info.method == "POST" and (m := _RUN.match(path)):
            return Operation("threads.create_run", "runs", "create", {"thread_id": m["thread_id"]},
                             body_limit_bytes=BODY_LIMIT_BYTES)
        if info.method == "POST" and _STATELESS.match(path):
            return Operation("runs.create", "runs", "create", {}, body_limit_bytes=BODY_LIMIT_BYTES)
        if m := _API.match(path):
            params = {"approval_id": m["approval_id"]} if m["approval_id"] else {}
            if m["action"]:
                return Operation(f"gateway.approvals.{m['action']}", "gateway", m["action"], params,
                                 body_limit_bytes=64 * 1024)
            if info.method == "GET":
                name = "show" if m["approval_id"] else "list"
                return Operation(f"gateway.approvals.{name}", "gateway", name, params)
            return Operation("gateway.unknown", "gateway", "unknown")
        return Operation("other", "any", "any")

    @staticmethod
    def principal(info: RequestInfo) -> Principal | None:
        user = groups = None
        for name, value in info.headers:
            if name == b"x-test-user":
                user = value.decode()
            elif name == b"x-test-groups":
                groups = value.decode()
            elif name == b"authorization" and value.startswith(b"Bearer "):
                user, _, groups = value[7:].decode().partition(":")
        if not user:
            return None
        return Principal(user, tuple(g for g in (groups or "").split(",") if g), auth_method="test")

    async def authorize(self, info: RequestInfo, op: Operation, body: bytes | None) -> Decision:
        principal = self.principal(info)
        if principal is None:
            if op.resource == "any":
                return Admit(Principal("anonymous"), op, rule="test-open")
            return Reject(401, "unauthenticated", "send x-test-user", operation=op)
        if op.name == "gateway.unknown":
            return Reject(404, "not_found", "no such approval endpoint", principal=principal, operation=op)
        needed = self.rule(op, body)
        if needed is None:
            return Admit(principal, op, rule="test-allow")
        return await self.service.check(info, principal, op, body, needed)
