"""The gateway's approval API, served by the gateway itself (`resource == "gateway"` operations):

    GET  /_graphwarden/approvals                 gateway.approvals.list
    GET  /_graphwarden/approvals/{id}            gateway.approvals.show
    POST /_graphwarden/approvals/{id}/approve    gateway.approvals.approve   {"comment": "..."}
    POST /_graphwarden/approvals/{id}/deny       gateway.approvals.deny      {"comment": "..."}

The guard authenticates the caller and admits the operation like any other; these handlers then
authorise per approval: only members of its approver groups may act on it or see it, besides its
requester, who may see it but never approve or deny it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import orjson

from graphwarden.approvals._service import ApprovalService, MaskHook
from graphwarden.approvals._states import State
from graphwarden.approvals._store import Approval, ApprovalError
from graphwarden.guard import LocalHandler, LocalResponse, Operation, Principal, RequestInfo
from graphwarden.ops import get_logger

if TYPE_CHECKING:
    from graphwarden.gateway import Gateway

log = get_logger("approvals.api")

OP_LIST = "gateway.approvals.list"
OP_SHOW = "gateway.approvals.show"
OP_APPROVE = "gateway.approvals.approve"
OP_DENY = "gateway.approvals.deny"
#: Longest approver comment kept.
MAX_COMMENT_CHARS = 2000


def _json(status: int, body: object) -> LocalResponse:
    return LocalResponse(status, orjson.dumps(body))


def _error(info: RequestInfo, status: int, code: str, reason: str) -> LocalResponse:
    return _json(status, {"error": code, "reason": reason, "request_id": info.request_id})


def _view(a: Approval, principal: Principal, *, history: bool) -> dict[str, object]:
    out = a.to_json(with_history=history)
    out["can_act"] = a.state is State.PENDING and a.can_act(principal.subject, principal.groups)
    return out


def _may_see(a: Approval, principal: Principal) -> bool:
    return principal.subject == a.requester or any(g in a.approver_groups for g in principal.groups)


class ApprovalHandlers:
    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    async def list(self, info: RequestInfo, principal: Principal, op: Operation, body: bytes | None) -> LocalResponse:
        query = parse_qs(info.target.partition("?")[2])
        which = query.get("state", ["pending"])[0]
        if which not in ("pending", "all", *(s.value for s in State)):
            return _error(info, 400, "bad_request", f"state must be all or one of {', '.join(s.value for s in State)}")
        try:
            limit = max(1, min(500, int(query.get("limit", ["200"])[0])))
        except ValueError:
            return _error(info, 400, "bad_request", "limit must be a whole number")
        items: list[dict[str, object]] = []
        for a in await self.service.list_approvals(states=None if which == "all" else (State(which),), limit=1000):
            mine = a.requester == principal.subject
            if which == "pending":
                # Pending approvals the caller may act on, and the caller's own pending requests.
                include = mine or a.can_act(principal.subject, principal.groups)
            else:
                include = mine or _may_see(a, principal)
            if include:
                items.append(_view(a, principal, history=False))
                if len(items) >= limit:
                    break
        return _json(200, {"approvals": items})

    async def show(self, info: RequestInfo, principal: Principal, op: Operation, body: bytes | None) -> LocalResponse:
        approval_id = op.params.get("approval_id", "")
        a = await self.service.get(approval_id)
        if a is None or not _may_see(a, principal):
            # Same answer for "absent" and "not yours": ids of other teams' approvals do not leak.
            return _error(info, 404, "approval_not_found", f"no approval {approval_id} visible to you")
        return _json(200, _view(a, principal, history=True))

    async def approve(self, info: RequestInfo, principal: Principal, op: Operation, body: bytes | None) -> LocalResponse:
        return await self._decide(info, principal, op, body, "approve")

    async def deny(self, info: RequestInfo, principal: Principal, op: Operation, body: bytes | None) -> LocalResponse:
        return await self._decide(info, principal, op, body, "deny")

    async def _decide(self, info: RequestInfo, principal: Principal, op: Operation, body: bytes | None,
                      decision: str) -> LocalResponse:
        if info.method != "POST":
            return LocalResponse(405, orjson.dumps({"error": "method_not_allowed", "reason": "use POST",
                                                    "request_id": info.request_id}),
                                 headers=((b"allow", b"POST"),))
        comment: str | None = None
        if body and body.strip():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                return _error(info, 400, "bad_request", 'body must be JSON like {"comment": "..."}')
            if not isinstance(parsed, dict) or set(parsed) - {"comment"}:
                return _error(info, 400, "bad_request", 'body must be a JSON object with only "comment"')
            raw = parsed.get("comment")
            if raw is not None and not isinstance(raw, str):
                return _error(info, 400, "bad_request", "comment must be a string")
            comment = raw[:MAX_COMMENT_CHARS] if raw else None
        approval_id = op.params.get("approval_id", "")
        existing = await self.service.get(approval_id)
        if existing is None or not _may_see(existing, principal):
            return _error(info, 404, "approval_not_found", f"no approval {approval_id} visible to you")
        try:
            a, decided = await self.service.decide(approval_id, principal.subject, principal.groups, decision, comment)
        except ApprovalError as exc:
            return _error(info, exc.status, exc.code, exc.reason)
        return _json(200, {"decided": decided, "approval": _view(a, principal, history=True)})

    def as_local_handlers(self) -> dict[str, LocalHandler]:
        return {name: _store_errors_as_503(fn) for name, fn in (
            (OP_LIST, self.list), (OP_SHOW, self.show), (OP_APPROVE, self.approve), (OP_DENY, self.deny))}


def _store_errors_as_503(fn: LocalHandler) -> LocalHandler:
    async def handler(info: RequestInfo, principal: Principal, op: Operation, body: bytes | None) -> LocalResponse:
        try:
            return await fn(info, principal, op, body)
        except sqlite3.Error:
            log.exception("approval store failed")
            return _error(info, 503, "approvals_unavailable", "the approval store is unavailable; try again later")

    return handler


def install(gateway: Gateway, approvals: ApprovalService, *, mask: MaskHook | None = None,
            sweep_interval_s: float | None = 30.0) -> None:
    """Serve the approval API on `gateway`, report the store in /readyz, and expire due approvals
    every `sweep_interval_s` (None: only lazily, when touched). `mask` masks request bodies shown
    to approvers. Call it from a gateway hook (inside the gateway's event loop)."""
    if mask is not None:
        approvals.mask = mask
    gateway.local_handlers.update(ApprovalHandlers(approvals).as_local_handlers())
    gateway.readiness_checks["approvals"] = approvals.readiness
    if sweep_interval_s is not None:
        approvals.start_sweeper(sweep_interval_s)


__all__ = ["ApprovalHandlers", "OP_APPROVE", "OP_DENY", "OP_LIST", "OP_SHOW", "install"]
