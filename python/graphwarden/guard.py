"""The seam between the proxy and the access-control stages (identity, route, policy, approvals).

The proxy knows nothing about tokens or rules. For every request it builds a `RequestInfo`, asks
the guard to `classify` it (cheap, synchronous), reads up to `Operation.body_limit_bytes` of the
body when the guard asks for it, and then awaits `authorize`. Only an `Admit` lets bytes reach the
upstream; a `Reject` is answered by the gateway itself.

`AllowAllGuard` is the passthrough used by the proxy core's own tests and benchmarks (no auth, no
policy); a real deployment always builds its guard from configuration and defaults to deny.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the proxy knows about a request once its head has arrived."""

    method: str
    #: The request target exactly as sent (path and query, not normalised).
    target: str
    #: Header names lower-cased, values as sent; in order, duplicates kept.
    headers: tuple[tuple[bytes, bytes], ...]
    client_host: str
    request_id: str
    scheme: str = "http"


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller."""

    subject: str
    groups: tuple[str, ...] = ()
    display_name: str | None = None
    #: "oidc", "api_key", "gateway_token", "anonymous" ...
    auth_method: str = "anonymous"
    token_id: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """A classified LangGraph API call."""

    #: Route class, e.g. "threads.create_run", "assistants.search", "meta.ok", "unknown".
    name: str
    resource: str
    action: str
    params: dict[str, str] = field(default_factory=dict)
    #: > 0 when the guard needs up to this many body bytes before it can decide.
    body_limit_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Admit:
    """Forward the request upstream."""

    principal: Principal
    operation: Operation
    #: Name of the policy rule that allowed it (for logs and audit).
    rule: str | None = None
    #: Extra headers the gateway adds upstream (e.g. a verified-identity header).
    upstream_headers: tuple[tuple[bytes, bytes], ...] = ()
    approval_id: str | None = None
    #: Replacement request body (e.g. owner metadata injected, search filters forced); sent
    #: instead of the body read through `Operation.body_limit_bytes`, with its own length.
    body: bytes | None = None
    #: Called once when the exchange ends, however it ends (releases stream-limit slots).
    on_complete: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the client directly; nothing reaches the upstream."""

    status: int
    #: Machine-readable error code, e.g. "unauthenticated", "forbidden", "approval_pending".
    code: str
    reason: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    #: Extra JSON fields for the error body (e.g. approval id and status URL).
    extra: dict[str, object] = field(default_factory=dict)
    principal: Principal | None = None
    operation: Operation | None = None


Decision = Admit | Reject


@dataclass(frozen=True, slots=True)
class ApprovalNeeded:
    """A policy rule whose effect is "approval" matched this request."""

    #: Id of the policy rule.
    rule: str
    #: The rule's `[approval]` table exactly as written in the policy file (validated at load
    #: through `ApprovalGate.validate_spec`).
    spec: Mapping[str, object]


class ApprovalGate(Protocol):
    """Just-in-time approvals as seen by the policy guard (implemented by graphwarden.approvals)."""

    def validate_spec(self, rule: str, spec: Mapping[str, object]) -> None:
        """Raise ValueError with a one-line message when a rule's approval table is invalid."""

    async def check(
        self,
        info: RequestInfo,
        principal: Principal,
        op: Operation,
        body: bytes | None,
        needed: ApprovalNeeded,
    ) -> Decision:
        """Admit (with approval_id) when an approval or grant covers this request; otherwise
        create/refresh the pending approval and hold or answer 202/403."""


@dataclass(frozen=True, slots=True)
class LocalResponse:
    """A response produced by the gateway itself for an admitted `resource == "gateway"` call."""

    status: int
    body: bytes
    content_type: bytes = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()


#: Serves an admitted gateway-local operation (e.g. "gateway.approvals.list"). It receives the
#: body the guard asked for through `Operation.body_limit_bytes`.
LocalHandler = Callable[[RequestInfo, Principal, Operation, bytes | None], Awaitable[LocalResponse]]


class Guard(Protocol):
    """Access control as seen by the proxy."""

    def classify(self, info: RequestInfo) -> Operation: ...

    async def authorize(self, info: RequestInfo, op: Operation, body: bytes | None) -> Decision: ...


ANONYMOUS = Principal(subject="anonymous", auth_method="anonymous")


class AllowAllGuard:
    """Passthrough guard: every request admitted as anonymous. For tests and benchmarks only."""

    _OP = Operation(name="passthrough", resource="any", action="any")

    def classify(self, info: RequestInfo) -> Operation:
        return self._OP

    async def authorize(self, info: RequestInfo, op: Operation, body: bytes | None) -> Decision:
        return Admit(principal=ANONYMOUS, operation=op, rule="passthrough")


__all__ = [
    "ANONYMOUS",
    "Admit",
    "ApprovalGate",
    "ApprovalNeeded",
    "LocalHandler",
    "LocalResponse",
    "AllowAllGuard",
    "Decision",
    "Guard",
    "Operation",
    "Principal",
    "Reject",
    "RequestInfo",
]
