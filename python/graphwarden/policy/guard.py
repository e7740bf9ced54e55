"""The access guard: identity -> route -> rate limits -> policy -> ownership -> approvals.

`build_guard(config, approval_gate=None)` is what `graphwarden serve` uses. The order of checks
for one request:

1. classify (sync, a trie lookup; reads no body);
2. authenticate: no or bad credential -> 401 with WWW-Authenticate (so unknown routes don't
   leak to anonymous callers either);
3. per-principal token bucket -> 429 with Retry-After;
4. unknown or refused route -> 404 / 400;
5. policy (first matching rule, default deny) -> 403 with the rule's reason;
6. owner isolation (policy/ownership.py) unless the rule grants cross_owner -> 404 / 403,
   plus the rewritten body (owner metadata, forced search filters);
7. approval rules go to the injected `ApprovalGate` (403 when approvals are not enabled);
8. concurrent-stream limit for streaming operations -> 429.

Every refusal is logged on `graphwarden.policy`; every decision is handed to the `on_decision`
callbacks and every refusal to the `on_refusal` ones (the audit trail attaches there: an
admitted request's rule travels on its `Admit`, so no record is built for it).
"""

from __future__ import annotations

import fnmatch
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from graphwarden import _native
from graphwarden.config import GatewayConfig
from graphwarden.errors import ConfigError, GatewayError
from graphwarden.gateway import upstream_tls_context
from graphwarden.guard import (
    Admit,
    ApprovalGate,
    ApprovalNeeded,
    Decision,
    Operation,
    Principal,
    Reject,
    RequestInfo,
)
from graphwarden.identity.authenticator import Authenticator
from graphwarden.identity.keys import KeyStore
from graphwarden.ops import get_logger
from graphwarden.policy.engine import (
    BodyError,
    Effect,
    Policy,
    PolicyDecision,
    PolicyError,
    default_policy_text,
    parse_policy,
    read_facts,
)
from graphwarden.policy.ownership import (
    MISSING,
    OwnerIndex,
    OwnershipDenied,
    check_store_query,
    needs_plan,
    plan,
)
from graphwarden.policy.ratelimit import RateLimiter, retry_after
from graphwarden.policy.routes import RouteTable
from graphwarden.upstream import UpstreamPool

log = get_logger("policy")


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One access decision, for logs and the audit trail."""

    request_id: str
    method: str
    target: str
    client: str
    #: "allow", "deny", "approval", "unauthenticated", "rate_limited", "not_found", "bad_request"
    effect: str
    status: int
    operation: str
    rule: str | None
    reason: str
    principal: Principal | None
    approval_id: str | None = None


DecisionHook = Callable[[DecisionRecord], None]


class PolicyStore:
    """The current policy, reloaded on SIGHUP and when the file's mtime changes. A bad file
    keeps the previous policy and logs the error. Each reload, loaded or rejected, is reported
    to the `on_reload` callbacks (the gateway's audit trail records it, with the BLAKE3 digest
    of the file's bytes)."""

    def __init__(self, path: str | None, gate: ApprovalGate | None, poll_s: float) -> None:
        self.path = Path(path) if path else None
        self.gate = gate
        self.poll_s = poll_s
        self._checked = time.monotonic()
        self._mtime = 0.0
        self._hup = False
        self.reloads = 0
        self.last_error: str | None = None
        #: BLAKE3 of the bytes of the policy in force (the file's, or the embedded default's).
        self.digest = ""
        self.on_reload: list[Callable[[dict[str, Any]], None]] = []
        self.policy = self._load()  # raises PolicyError at start

    def _load(self) -> Policy:
        policy, self.digest, mtime = self._read()
        if mtime is not None:
            self._mtime = mtime
        return policy

    def _read(self) -> tuple[Policy, str, int | None]:
        """The policy, the BLAKE3 of its bytes and the file's mtime (None: the embedded one)."""
        if self.path is None:
            text = default_policy_text()
            return parse_policy(text, "<embedded default policy>", self.gate), _native.blake3_hex(text.encode()), None
        st = self.path.stat()
        data = self.path.read_bytes()
        return parse_policy(data.decode("utf-8"), str(self.path), self.gate), _native.blake3_hex(data), st.st_mtime_ns

    def request_reload(self) -> None:
        self._hup = True

    def reload(self) -> bool:
        """Reads the file again. False, with the policy in force kept, when it does not load,
        or when its reload cannot be recorded (it is tried again at the next check): a policy
        is never in force without the record of when it came in."""
        try:
            policy, digest, mtime = self._read()
        except (PolicyError, OSError, UnicodeDecodeError) as exc:
            self.last_error = str(exc)
            attempted: str | None = None
            if self.path is not None:
                try:
                    self._mtime = self.path.stat().st_mtime_ns  # don't retry until it changes again
                    attempted = _native.blake3_hex(self.path.read_bytes())
                except OSError:
                    pass
            log.error("policy reload failed; keeping the previous policy",
                      extra={"fields": {"file": str(self.path), "error": str(exc)}})
            self._report({"result": "rejected", "file": str(self.path), "digest": attempted, "error": str(exc),
                          "in_force": self.digest})
            return False
        if not self._report({"result": "loaded", "file": str(self.path), "digest": digest, "previous": self.digest,
                             "rules": [r.id for r in policy.rules]}):
            self.last_error = "the reload could not be recorded"
            log.error("policy reload not recorded; keeping the previous policy until it can be",
                      extra={"fields": {"file": str(self.path)}})
            return False
        self.policy, self.digest = policy, digest
        if mtime is not None:
            self._mtime = mtime
        self.last_error = None
        self.reloads += 1
        log.info("policy loaded", extra={"fields": {"file": str(self.path), "rules": len(policy.rules)}})
        return True

    def _report(self, result: dict[str, Any]) -> bool:
        """Tells the `on_reload` callbacks; False when one of them failed."""
        ok = True
        for hook in self.on_reload:
            try:
                hook(result)
            except Exception:
                log.exception("policy reload could not be recorded")
                ok = False
        return ok

    def current(self) -> Policy:
        if self.path is not None:
            if self._hup:
                self._hup = False
                self.reload()
            else:
                now = time.monotonic()
                if now - self._checked >= self.poll_s:
                    self._checked = now
                    try:
                        changed = self.path.stat().st_mtime_ns != self._mtime
                    except OSError:
                        changed = False
                    if changed:
                        self.reload()
        return self.policy


_CREATES = frozenset({"threads.create", "assistants.create", "crons.create", "crons.create_for_thread",
                      "runs.create", "runs.stream", "runs.wait", "runs.batch"})


def _header_value(text: str) -> bytes:
    return quote(text, safe="@:+=._-/!$&'()*,;~ ").encode("ascii")


class AccessGuard:
    """`graphwarden.guard.Guard` with identity, policy, owner isolation and rate limits."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        approval_gate: ApprovalGate | None = None,
        key_store: KeyStore | None = None,
    ) -> None:
        self.config = config
        self.routes = RouteTable(body_limit_bytes=config.limits.max_body_bytes)
        self.auth = Authenticator(config, key_store=key_store)
        if not self.auth.enabled:
            raise ConfigError(
                "identity", "no way to authenticate callers (API keys off, no OIDC issuer)",
                "set identity.api_keys = true or add an [[identity.oidc]] issuer",
            )
        pc = config.policy
        self.gate = approval_gate
        try:
            self.policies = PolicyStore(pc.file, approval_gate, pc.reload_poll_s)
        except PolicyError as exc:
            raise ConfigError("policy.file", f"{pc.file or 'embedded policy'}: {exc}", "fix the policy rule named") from None
        rl = pc.rate_limits
        self.limits = RateLimiter(rl.requests_per_s, rl.burst, rl.max_streams)
        self.owner_isolation = pc.owner_isolation
        self.owner_key = pc.owner_metadata_key
        up = config.upstream
        tls = upstream_tls_context(up.verify_tls, up.ca_file) if up.scheme == "https" else None
        self.owners = OwnerIndex(
            UpstreamPool(host=up.host, port=up.port, tls=tls, server_hostname=up.host,
                         connect_timeout_s=up.connect_timeout_s, max_idle=8, idle_timeout_s=up.pool_idle_timeout_s),
            up.authority, up.resolved_headers(), pc.owner_metadata_key, pc.owner_cache_s,
        )
        ident = config.identity
        if not ident.api_key_header.startswith("x-") or any(
            fnmatch.fnmatchcase(ident.api_key_header, g.lower()) for g in up.forward_x_headers
        ):
            raise ConfigError(
                "identity.api_key_header", f"{ident.api_key_header} would be forwarded to the upstream",
                "use an x-* header name that upstream.forward_x_headers does not match (default x-api-key)",
            )
        for h in (ident.upstream_subject_header, ident.upstream_groups_header):
            if h is not None and any(fnmatch.fnmatchcase(h, g.lower()) for g in up.forward_x_headers):
                raise ConfigError(
                    "upstream.forward_x_headers", f"{h} would let clients send their own copy of the identity header",
                    f"remove the glob matching {h} from forward_x_headers",
                )
        self._subject_header = ident.upstream_subject_header.encode() if ident.upstream_subject_header else None
        self._groups_header = ident.upstream_groups_header.encode() if ident.upstream_groups_header else None
        #: Called with every decision.
        self.on_decision: list[DecisionHook] = []
        #: Called with every decision that is not an allow (the audit trail attaches here).
        self.on_refusal: list[DecisionHook] = []

    # -- Guard protocol -------------------------------------------------------------------------
    def classify(self, info: RequestInfo) -> Operation:
        return self.routes.classify(info.method, info.target)

    async def authorize(self, info: RequestInfo, op: Operation, body: bytes | None) -> Decision:
        auth = await self.auth.authenticate(info)
        if isinstance(auth, Reject):
            return self._reject(info, op, auth, "unauthenticated", None, None)
        principal = auth
        wait = self.limits.take(principal.subject)
        if wait > 0:
            return self._reject(info, op, Reject(429, "rate_limited", "too many requests",
                                                 headers=((b"retry-after", retry_after(wait)),)),
                                "rate_limited", principal, None)
        if op.resource == "unknown":
            rejected = op.params.get("rejected")
            if rejected:
                return self._reject(info, op, Reject(400, "bad_request", f"refused request path: {rejected}"),
                                    "bad_request", principal, None)
            return self._reject(info, op, Reject(404, "unknown_route", f"{info.method} {info.target.partition('?')[0]} is not a known route"),
                                "not_found", principal, None)
        try:
            facts = read_facts(op, body)
        except BodyError as exc:
            return self._reject(info, op, Reject(400, "bad_request", str(exc)), "bad_request", principal, None)
        decision = self.policies.current().decide(principal, op, facts)
        if decision.effect is Effect.DENY:
            return self._reject(info, op, Reject(403, "forbidden", decision.reason), "deny", principal, decision.rule)

        new_body: bytes | None = None
        if self.owner_isolation:
            try:
                if decision.cross_owner:
                    new_body = self._stamp_owner(op, principal, facts.json)
                elif op.name == "store.get" or needs_plan(op):  # (a meta read, say, has no owner)
                    new_body = await self._enforce_owner(info, op, principal, facts.json)
            except OwnershipDenied as exc:
                effect = "not_found" if exc.status == 404 else "deny"
                return self._reject(info, op, Reject(exc.status, exc.code, exc.reason), effect, principal, decision.rule)

        approval_id: str | None = None
        if decision.effect is Effect.APPROVAL:
            if self.gate is None:
                return self._reject(info, op, Reject(403, "forbidden", "approval required but approvals are not enabled"),
                                    "deny", principal, decision.rule)
            gated = await self.gate.check(info, principal, op, body,
                                          ApprovalNeeded(decision.rule or "", decision.approval or {}))
            if isinstance(gated, Reject):
                return self._reject(info, op, gated, "approval", principal, decision.rule)
            approval_id = gated.approval_id

        on_complete: Callable[[], None] | None = None
        if op.name in self.routes.streams:
            if not self.limits.open_stream(principal.subject):
                return self._reject(info, op, Reject(429, "rate_limited", "too many concurrent streams",
                                                     headers=((b"retry-after", b"1"),)), "rate_limited", principal, decision.rule)
            subject = principal.subject
            on_complete = lambda: self.limits.close_stream(subject)  # noqa: E731

        headers: list[tuple[bytes, bytes]] = []
        if self._subject_header is not None:
            headers.append((self._subject_header, _header_value(principal.subject)))
        if self._groups_header is not None:
            groups = ",".join(_header_value(g).decode("ascii").replace(",", "%2C") for g in principal.groups)
            headers.append((self._groups_header, groups.encode("ascii")))
        admit = Admit(principal=principal, operation=op, rule=decision.rule, upstream_headers=tuple(headers),
                      approval_id=approval_id, body=new_body, on_complete=on_complete)
        self._record(info, op, "allow", 0, principal, decision.rule, "", approval_id)
        return admit

    # -- owner isolation ------------------------------------------------------------------------
    def _stamp_owner(self, op: Operation, principal: Principal, doc: Any) -> bytes | None:
        """Cross-owner grants skip the checks, but what they create still gets an owner."""
        if op.name not in _CREATES:
            return None
        items = doc if isinstance(doc, list) else [doc if isinstance(doc, dict) else {}]
        for item in items:
            if isinstance(item, dict):
                meta = item.get("metadata")
                if not isinstance(meta, dict):
                    meta = {}
                    item["metadata"] = meta
                meta[self.owner_key] = principal.subject  # a client never chooses the owner
        return orjson.dumps(items if isinstance(doc, list) else items[0])

    async def _enforce_owner(self, info: RequestInfo, op: Operation, principal: Principal, doc: Any) -> bytes | None:
        if op.name == "store.get":
            check_store_query(info.target, principal.subject)
            return None
        p = plan(op, principal, doc, self.owner_key)
        owners: dict[tuple[str, str], str | None] = {}
        for check in p.checks:
            try:
                owner = await self.owners.owner(check.kind, check.id)
            except GatewayError as exc:
                raise OwnershipDenied(502, "upstream_unavailable", f"could not check ownership: {exc.reason}") from None
            owners[(check.kind, check.id)] = owner
            if owner == MISSING:
                if check.may_be_missing:
                    continue
                raise OwnershipDenied(404, "not_found", f"{check.kind[:-1]} {check.id} not found")
            if owner == principal.subject:
                continue
            if owner is None and check.kind == "assistants" and op.action == "read":
                continue
            if check.may_be_missing:
                raise OwnershipDenied(409, "conflict", f"{check.kind[:-1]} id {check.id} is taken")
            raise OwnershipDenied(404, "not_found", f"{check.kind[:-1]} {check.id} not found")
        if p.keep_owner_of is not None and isinstance(p.body, dict):
            meta = p.body.get("metadata")
            if isinstance(meta, dict) or meta is None:
                meta = meta if isinstance(meta, dict) else {}
                meta[self.owner_key] = principal.subject
                p.body["metadata"] = meta
                p.rewrite = True
        if p.invalidate is not None:
            self.owners.forget(p.invalidate)
        if p.rewrite:
            return orjson.dumps(p.body)
        return None

    # -- decisions ------------------------------------------------------------------------------
    def _reject(self, info: RequestInfo, op: Operation, rej: Reject, effect: str, principal: Principal | None,
                rule: str | None) -> Reject:
        extra = dict(rej.extra)
        if rule is not None and effect == "deny":
            extra.setdefault("rule", rule)
        out = Reject(rej.status, rej.code, rej.reason, headers=rej.headers, extra=extra,
                     principal=principal, operation=op)
        self._record(info, op, effect, rej.status, principal, rule, rej.reason, None)
        return out

    def _record(self, info: RequestInfo, op: Operation, effect: str, status: int, principal: Principal | None,
                rule: str | None, reason: str, approval_id: str | None) -> None:
        if effect == "allow" and not self.on_decision and not log.isEnabledFor(10):
            return  # the hot path: nobody wants a record of an allow
        rec = DecisionRecord(info.request_id, info.method, info.target, info.client_host, effect, status, op.name,
                             rule, reason, principal, approval_id)
        if effect != "allow" or log.isEnabledFor(10):
            log.info("access decision", extra={"fields": {
                "request_id": rec.request_id, "effect": effect, "status": status, "operation": op.name,
                "rule": rule, "reason": reason, "subject": principal.subject if principal else None,
                "auth": principal.auth_method if principal else None,
            }})
        for hook in self.on_decision:
            hook(rec)
        if effect != "allow":
            for hook in self.on_refusal:
                hook(rec)

    def explain(self, principal: Principal, method: str, target: str, body: bytes | None) -> tuple[Operation, PolicyDecision]:
        op = self.routes.classify(method, target)
        facts = read_facts(op, body if op.body_limit_bytes else None)
        return op, self.policies.current().decide(principal, op, facts)


def build_guard(
    config: GatewayConfig,
    *,
    approval_gate: ApprovalGate | None = None,
    key_store: KeyStore | None = None,
) -> AccessGuard:
    """The guard for `config`. Raises ConfigError when identity or policy cannot be set up."""
    guard = AccessGuard(config, approval_gate=approval_gate, key_store=key_store)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP") and os.name == "posix":
        store = guard.policies
        signal.signal(signal.SIGHUP, lambda _signo, _frame: store.request_reload())
    return guard


__all__ = ["AccessGuard", "DecisionHook", "DecisionRecord", "PolicyStore", "build_guard"]
