"""`ApprovalService`: the `ApprovalGate` the policy guard calls when a rule's effect is "approval".

Request path (`check`): parse the rule's spec, fingerprint the request, and in ONE store
transaction consume a matching approval / use a grant, or find the pending one, or create it.
Then, by the rule's mode, hold the request open until a decision (woken at once by decisions made
in this process, and re-reading the store every `poll_interval_s` for decisions made by other
gateway processes), or answer 202 with the approval id and its status URL.

Approver path (`decide`): record a vote in the store (N of M distinct approvers, never the
requester), wake held requests, send notifications.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

import orjson

from graphwarden.approvals._notify import Notifier, NotifySettings
from graphwarden.approvals._spec import (
    JUSTIFICATION_HEADER,
    ApprovalSpec,
    assistant_of,
    body_sha256,
    body_summary,
    fingerprint,
    grant_key,
    json_body,
    justification_of,
    parse_spec,
)
from graphwarden.approvals._states import State
from graphwarden.approvals._store import Approval, ApprovalStore, NewApproval
from graphwarden.config import GatewayConfig
from graphwarden.errors import FAILURES
from graphwarden.guard import Admit, ApprovalNeeded, Decision, Operation, Principal, Reject, RequestInfo
from graphwarden.ops import get_logger

T = TypeVar("T")
log = get_logger("approvals")

#: Masking hook: request body in, body safe to show an approver out.
MaskHook = Callable[[bytes], bytes]
#: Called with ("approval.requested" | ".vote" | ".approved" | ".denied" | ".expired" | ".used" |
#: ".auto_approved", approval) after each committed step (audit trail hook).
Observer = Callable[[str, Approval], None]

RETRY_AFTER_S = 5


def status_url(approval_id: str) -> str:
    return f"/_graphwarden/approvals/{approval_id}"


def _has_body(info: RequestInfo) -> bool:
    for name, value in info.headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


class ApprovalService:
    """Implements `graphwarden.guard.ApprovalGate`."""

    def __init__(
        self,
        store: ApprovalStore,
        *,
        hold_seconds: float = 60.0,
        poll_interval_s: float = 1.0,
        notifier: Notifier | None = None,
        mask: MaskHook | None = None,
    ) -> None:
        self.store = store
        self.hold_seconds = hold_seconds
        self.poll_interval_s = poll_interval_s
        self.notifier = notifier or Notifier(NotifySettings())
        self.mask = mask
        self.observers: list[Observer] = []
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._specs: dict[tuple[str, bytes], ApprovalSpec] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: GatewayConfig, *, mask: MaskHook | None = None) -> ApprovalService:
        ac = config.approvals
        store = ApprovalStore(ac.resolved_db_path(config.state.dir))
        notifier = Notifier(NotifySettings(
            webhook_urls=tuple(ac.webhook_urls), slack_webhook_url=ac.resolved_slack_url(),
            timeout_s=ac.notify_timeout_s, retries=ac.notify_retries, backoff_s=ac.notify_backoff_s,
            public_base_url=ac.public_base_url,
        ))
        return cls(store, hold_seconds=ac.hold_seconds, poll_interval_s=ac.poll_interval_s,
                   notifier=notifier, mask=mask)

    # -- helpers --------------------------------------------------------------------------------
    async def _run(self, fn: Callable[[], T]) -> T:
        """Run a (short, blocking) store call off the event loop."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="gw-approvals")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _emit(self, kind: str, a: Approval) -> None:
        for observer in self.observers:
            try:
                observer(kind, a)
            except Exception:  # noqa: BLE001 - an observer bug must not change the decision
                log.exception("approval observer failed")
        if kind in ("approval.requested", "approval.approved", "approval.denied", "approval.expired"):
            self.notifier.notify(kind, a)

    def _wake(self, approval_id: str) -> None:
        for ev in self._waiters.get(approval_id, ()):
            ev.set()

    def spec(self, needed: ApprovalNeeded) -> ApprovalSpec:
        key = (needed.rule, orjson.dumps(dict(needed.spec), option=orjson.OPT_SORT_KEYS, default=str))
        found = self._specs.get(key)
        if found is None:
            found = self._specs[key] = parse_spec(needed.rule, needed.spec)
        return found

    def validate_spec(self, rule: str, spec: Mapping[str, object]) -> None:
        parse_spec(rule, spec)

    def body_view(self, body: bytes | None, *, parsed: object = None, body_digest: str | None = None) -> object:
        summary = body_summary(body, parsed=parsed, body_digest=body_digest)
        if self.mask is None or not body:
            return summary
        try:
            masked = self.mask(body)
        except FAILURES:  # fail closed: show the summary, never the raw body
            log.exception("approval body mask failed")
            return summary
        try:
            shown: object = orjson.loads(masked)
        except orjson.JSONDecodeError:
            shown = masked.decode("utf-8", "replace")
        return {**summary, "masked": shown}

    # -- the gate -------------------------------------------------------------------------------
    async def check(
        self,
        info: RequestInfo,
        principal: Principal,
        op: Operation,
        body: bytes | None,
        needed: ApprovalNeeded,
    ) -> Decision:
        try:
            spec = self.spec(needed)
        except ValueError as exc:  # validated at policy load; fail closed if it was not
            log.error("invalid approval spec", extra={"fields": {"rule": needed.rule, "error": str(exc)}})
            return Reject(500, "approval_misconfigured", f"rule {needed.rule} has an invalid approval table",
                          principal=principal, operation=op)
        if body is None and _has_body(info):
            # The fingerprint would not cover the body: one approval could admit any payload.
            log.error("approval rule on an unread body", extra={"fields": {"rule": needed.rule, "op": op.name}})
            return Reject(500, "approval_misconfigured",
                          f"rule {needed.rule} needs the request body to bind an approval, but it was not read",
                          principal=principal, operation=op)
        parsed = json_body(body)
        assistant = assistant_of(op, parsed)
        justification = justification_of(spec, info.headers, parsed)
        digest = body_sha256(body)
        fp = fingerprint(principal, info.method, op, body, body_digest=digest)
        gk = grant_key(needed.rule, spec, principal, op, assistant) if spec.grant == "window" else None
        auto = spec.auto_approve.holds(self.store.clock(), assistant) if spec.auto_approve else None
        new = NewApproval(
            rule=needed.rule, fingerprint=gk if gk is not None else fp, grant_kind=spec.grant, grant_key=gk,
            requester=principal.subject, requester_groups=principal.groups, method=info.method,
            target=info.target, operation=op.name, params=dict(op.params), assistant_id=assistant,
            body_sha256=digest, body_size=len(body or b""),
            body_view=self.body_view(body, parsed=parsed, body_digest=digest),
            justification=justification, approver_groups=tuple(spec.approver_groups),
            approvals_required=spec.approvals_required, mode=spec.mode, expires_seconds=spec.expires_seconds,
            grant_seconds=spec.grant_seconds, request_id=info.request_id,
            justification_missing=spec.justification_required and justification is None, auto_reason=auto,
        )
        try:
            found = await self._run(partial(self.store.lookup_or_create, new))
        except sqlite3.Error as exc:  # fail closed, and say why
            log.error("approval store failed", extra={"fields": {"rule": needed.rule, "error": str(exc)}})
            return Reject(503, "approvals_unavailable", "the approval store is unavailable; try again later",
                          headers=((b"retry-after", str(RETRY_AFTER_S).encode()),),
                          principal=principal, operation=op)
        a = found.approval
        if found.kind == "needs_justification" or a is None:
            return Reject(
                400, "justification_required",
                f"rule {needed.rule} requires a justification: send it in the "
                f"{JUSTIFICATION_HEADER.decode()} header or the body field {spec.justification_field}",
                principal=principal, operation=op,
            )
        if found.kind in ("admit", "auto"):
            if found.kind == "auto":
                self._emit("approval.auto_approved", a)
            self._emit("approval.used", a)
            return Admit(principal, op, rule=needed.rule, approval_id=a.id)
        if found.kind == "denied":
            return self._denied(a, principal, op)
        if found.kind == "expired":
            return self._expired(a, principal, op)
        if found.kind == "created":
            self._emit("approval.requested", a)
        if spec.mode == "async":
            return self._pending(a, principal, op, 202, "approval required: re-send the same request once "
                                 "it is approved")
        hold_s = spec.hold_seconds if spec.hold_seconds is not None else self.hold_seconds
        return await self._hold(a, principal, op, info, needed.rule, hold_s)

    async def _hold(self, a: Approval, principal: Principal, op: Operation, info: RequestInfo, rule: str,
                    hold_s: float) -> Decision:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold_s
        ev = asyncio.Event()
        self._waiters.setdefault(a.id, set()).add(ev)
        try:
            while True:
                state = await self._run(partial(self.store.state_of, a.id))
                if state is State.PENDING and self.store.clock() >= a.expires_at:
                    refreshed = await self._run(partial(self.store.get, a.id))
                    state = refreshed.state if refreshed else None
                    if refreshed is not None and state is State.EXPIRED:
                        self._emit("approval.expired", refreshed)
                if state is State.APPROVED:
                    used = await self._run(partial(self.store.consume, a.id, principal.subject, info.method,
                                                   info.target))
                    if used is not None:
                        self._emit("approval.used", used)
                        return Admit(principal, op, rule=rule, approval_id=a.id)
                    state = await self._run(partial(self.store.state_of, a.id))
                if state is State.DENIED or state is State.EXPIRED:
                    await self._run(partial(self.store.mark_reported, a.id))
                    latest = await self._run(partial(self.store.get, a.id, refresh=False))
                    assert latest is not None
                    return self._denied(latest, principal, op) if state is State.DENIED else \
                        self._expired(latest, principal, op)
                if state is not State.PENDING:
                    return Reject(403, "approval_used",
                                  f"approval {a.id} was already used by another request; re-send to ask again",
                                  extra={"approval_id": a.id, "status_url": status_url(a.id)},
                                  principal=principal, operation=op)
                now = loop.time()
                remaining = min(deadline - now, a.expires_at - self.store.clock() + 0.01)
                if deadline - now <= 0:
                    return self._pending(
                        a, principal, op, 403,
                        f"no decision within {hold_s:g} s; approval {a.id} is still pending: re-send the "
                        "same request once it is approved",
                    )
                try:
                    await asyncio.wait_for(ev.wait(), max(0.0, min(remaining, self.poll_interval_s)))
                except TimeoutError:
                    pass
                ev.clear()
        finally:
            waiters = self._waiters.get(a.id)
            if waiters is not None:
                waiters.discard(ev)
                if not waiters:
                    del self._waiters[a.id]

    def _pending(self, a: Approval, principal: Principal, op: Operation, status: int, reason: str) -> Reject:
        return Reject(
            status, "approval_pending", reason,
            headers=((b"retry-after", str(RETRY_AFTER_S).encode()),),
            extra={
                "approval_id": a.id, "status_url": status_url(a.id), "state": "pending",
                "approvals_required": a.approvals_required, "approver_groups": list(a.approver_groups),
                "expires_at": a.expires_at,
            },
            principal=principal, operation=op,
        )

    def _denied(self, a: Approval, principal: Principal, op: Operation) -> Reject:
        deny = next((v for v in reversed(a.votes) if v.decision == "deny"), None)
        who = f" by {deny.approver}" + (f": {deny.comment}" if deny and deny.comment else "") if deny else ""
        return Reject(403, "approval_denied", f"approval {a.id} was denied{who}",
                      extra={"approval_id": a.id, "status_url": status_url(a.id), "state": "denied"},
                      principal=principal, operation=op)

    def _expired(self, a: Approval, principal: Principal, op: Operation) -> Reject:
        return Reject(403, "approval_expired",
                      f"approval {a.id} expired before it was decided or used; re-send to ask again",
                      extra={"approval_id": a.id, "status_url": status_url(a.id), "state": "expired"},
                      principal=principal, operation=op)

    # -- approvers ------------------------------------------------------------------------------
    async def decide(self, approval_id: str, actor: str, groups: tuple[str, ...] | list[str], decision: str,
                     comment: str | None) -> tuple[Approval, bool]:
        """Record a vote (raises ApprovalError); wakes held requests and notifies on a decision."""
        a, decided = await self._run(partial(self.store.decide, approval_id, actor, groups, decision, comment))
        self._wake(approval_id)
        if decided:
            self._emit("approval.approved" if a.state is State.APPROVED else "approval.denied", a)
        else:
            self._emit("approval.vote", a)
        return a, decided

    async def get(self, approval_id: str) -> Approval | None:
        return await self._run(partial(self.store.get, approval_id))

    async def list_approvals(self, states: tuple[State, ...] | None = None, limit: int = 200) -> list[Approval]:
        await self.sweep()  # expire (and notify) before showing
        return await self._run(partial(self.store.list_approvals, states=states, limit=limit, expire=False))

    async def sweep(self) -> int:
        """Expire what is due now (and notify); returns how many were expired."""
        expired = await self._run(self.store.expire_due)
        for a in expired:
            self._wake(a.id)
            # An ended grant window is routine; a request nobody decided in time is worth a notice.
            self._emit("approval.expired" if a.decided_at is None else "approval.grant_ended", a)
        return len(expired)

    def start_sweeper(self, interval_s: float = 30.0) -> None:
        """Expire due approvals in the background every `interval_s` (needs a running loop)."""
        if self._sweeper is not None and not self._sweeper.done():
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.sweep()
                except Exception:  # noqa: BLE001 - keep sweeping; the store may come back
                    log.exception("approval sweep failed")

        self._sweeper = asyncio.get_running_loop().create_task(loop())

    def readiness(self) -> str | None:
        """For `Gateway.readiness_checks`: a problem string when the store cannot be read."""
        try:
            self.store.ping()
        except sqlite3.Error as exc:
            return f"approval store {self.store.path}: {exc}"
        return None

    async def aclose(self) -> None:
        await self.notifier.drain(2.0)
        self.close()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.notifier.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


__all__ = ["ApprovalService", "MaskHook", "Observer", "status_url"]
