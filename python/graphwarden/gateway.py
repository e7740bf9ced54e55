"""The gateway: what happens to one request, from its head to the end of its response.

`Gateway.handle` is the request task the client connection starts. The stages follow
DESIGN.md: local endpoints → guard (identity, route, policy) → upstream (pooled h11) → response
(filters such as SSE masking hook in per response) → metrics and the access log.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

import h11
import orjson

from graphwarden.config import GatewayConfig
from graphwarden.errors import FAILURES, ClientGone, GatewayError, UpstreamTimeout, UpstreamUnavailable
from graphwarden.guard import (
    Admit,
    Decision,
    Guard,
    LocalHandler,
    Operation,
    Principal,
    Reject,
    RequestInfo,
)
from graphwarden.http import h11fast
from graphwarden.http.headers import RequestHeaderPolicy, response_headers_for_client, valid_request_id
from graphwarden.ops import AccessLog, Metrics, get_logger
from graphwarden.upstream import UpstreamConnection, UpstreamPool

from graphwarden.flow import CORK_FLUSH_BYTES

if TYPE_CHECKING:
    from graphwarden.listener.connection import ClientConnection, RequestBody

log = get_logger("gateway")

#: Methods retried once on a fresh connection when a reused keep-alive connection turns out to
#: be closed before any response byte arrived (RFC 9110 9.2.2 idempotent methods).
_RETRYABLE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class BodyFilter(Protocol):
    """Rewrites a response body as it streams (masking). Returns what may be sent now."""

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class WholeBodyFilter(BodyFilter, Protocol):
    """A filter that needs the whole body anyway (masked JSON). When the upstream declares a
    Content-Length of at most `whole_body_limit`, the gateway hands it the body in one piece
    (`whole`) and answers with the new Content-Length: no chunked re-framing, and the response
    head is not sent before the body is known (an upstream failure mid-body is still a clean
    502)."""

    whole_body_limit: int

    def whole(self, body: bytes) -> bytes: ...


def _declared_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        if name == b"transfer-encoding":
            return None
    return None


@dataclass(slots=True)
class Exchange:
    """Per-request facts shared by the stages, the hooks, the access log and the audit trail."""

    request_id: str
    method: str
    target: str
    client_ip: str
    started: float
    route: str = "unknown"
    principal: Principal | None = None
    operation: Operation | None = None
    decision: str = ""
    rule: str | None = None
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    outcome: str = "ok"
    duration_s: float = 0.0
    #: Set by the gateway: the request body as forwarded upstream (when it was read whole).
    request_body: bytes | None = None
    response_headers: Sequence[tuple[bytes, bytes]] = ()
    notes: dict[str, object] = field(default_factory=dict)


#: Builds a filter for a response, or None to pass it through untouched.
ResponseFilterFactory = Callable[[Exchange, int, Sequence[tuple[bytes, bytes]]], BodyFilter | None]


class ExchangeHooks(Protocol):
    """Evidence and masking in the request path (graphwarden.evidence implements it).

    Order for one request: `body_limit` (how much of the body must be read before the
    decision) → guard → `on_decision` (records the request; may return a rewritten body for the
    upstream; may raise GatewayError to refuse, e.g. when the audit trail cannot be written) →
    `response_filter` → `before_end` (awaited before the last byte goes to the client: strict
    durability) → `on_complete` (always, also for rejected and failed requests).
    """

    def body_limit(self, ex: Exchange, op: Operation) -> int: ...

    def on_decision(
        self, ex: Exchange, info: RequestInfo, decision: Decision, body: bytes | None
    ) -> bytes | Awaitable[bytes | None] | None:
        """The body to forward instead (bytes), None to keep it, or an awaitable giving one of
        those when the request must wait (strict durability): most requests need no
        coroutine."""
        ...

    def response_filter(
        self, ex: Exchange, status: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> BodyFilter | None: ...

    def before_end(self, ex: Exchange) -> Awaitable[None] | None:
        """Returns what to await before the end goes out, or None when nothing must wait."""
        ...

    def on_complete(self, ex: Exchange) -> None: ...


def json_error(code: str, reason: str, request_id: str, extra: dict[str, object] | None = None) -> bytes:
    body: dict[str, object] = {"error": code, "reason": reason, "request_id": request_id}
    if extra:
        body.update(extra)
    return orjson.dumps(body)


def upstream_tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Gateway:
    def __init__(self, config: GatewayConfig, guard: Guard, *, worker: int = 0) -> None:
        self.config = config
        self.guard = guard
        self.worker = worker
        up = config.upstream
        tls = upstream_tls_context(up.verify_tls, up.ca_file) if up.scheme == "https" else None
        self.pool = UpstreamPool(
            host=up.host,
            port=up.port,
            tls=tls,
            server_hostname=up.host,
            connect_timeout_s=up.connect_timeout_s,
            max_idle=up.pool_max_idle,
            idle_timeout_s=up.pool_idle_timeout_s,
        )
        self.headers = RequestHeaderPolicy(
            upstream_authority=up.authority,
            inject=up.resolved_headers(),
            forward_x_headers=up.forward_x_headers,
        )
        self.metrics = Metrics(worker)
        self.access_log = AccessLog(config.logging.access_log)
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self.response_filters: list[ResponseFilterFactory] = []
        #: Extra readiness checks (name -> callable returning an error string or None).
        self.readiness_checks: dict[str, Callable[[], str | None]] = {}
        #: Gateway-answered operations (classified with resource "gateway"), by operation name.
        self.local_handlers: dict[str, LocalHandler] = {}
        #: Masking and audit in the request path; None = plain proxy.
        self.hooks: ExchangeHooks | None = None
        #: Called (last registered first) when the gateway closes after draining.
        self.on_close: list[Callable[[], None]] = []

    # -- entry point --------------------------------------------------------------------------
    async def handle(self, client: ClientConnection, req: h11.Request, body: RequestBody) -> None:
        metrics = self.metrics
        metrics.in_flight += 1
        target = req.target.decode("latin-1")
        request_id = valid_request_id(_header(client.req_headers, b"x-request-id"))
        ex = Exchange(
            request_id=request_id,
            method=req.method.decode("ascii"),
            target=target,
            client_ip=client.client_ip,
            started=time.perf_counter(),
        )
        try:
            path = target.partition("?")[0]
            if path in HEALTH_PATHS:
                await self._local(client, ex, path)
            else:
                await self._proxy(client, req, body, ex)
        except asyncio.CancelledError:
            ex.outcome = "client_disconnected"
        except ClientGone:
            ex.outcome = "client_disconnected"
        except GatewayError as exc:
            ex.outcome = exc.code
            if isinstance(exc, (UpstreamUnavailable, UpstreamTimeout)):
                metrics.upstream_errors[exc.code] += 1
            if not client.response_started and not client.closed:
                self.send_error(client, ex, exc.status, exc.code, exc.reason)
            else:
                client.abort()
        except FAILURES:
            ex.outcome = "internal_error"
            log.exception("request failed", extra={"fields": {"request_id": request_id}})
            if not client.response_started and not client.closed:
                self.send_error(client, ex, 500, "internal_error", "the gateway failed on this request")
            else:
                client.abort()
        finally:
            # --- policy: release per-request guard resources (stream slots) ---
            release = ex.notes.pop("on_complete", None)
            if callable(release):
                release()
            metrics.in_flight -= 1
            duration = time.perf_counter() - ex.started
            ex.bytes_in = body.received
            ex.duration_s = duration
            if self.hooks is not None and ex.operation is not None:
                try:
                    self.hooks.on_complete(ex)
                except FAILURES:
                    log.exception("recording the response failed", extra={"fields": {"request_id": request_id}})
            metrics.observe(ex.route, ex.status, duration, ex.bytes_in, ex.bytes_out)
            if self.access_log.enabled:
                self.access_log.emit(
                    request_id=request_id,
                    method=ex.method,
                    path=ex.target.partition("?")[0],
                    route=ex.route,
                    status=ex.status,
                    outcome=ex.outcome,
                    duration_ms=round(duration * 1000, 3),
                    bytes_in=ex.bytes_in,
                    bytes_out=ex.bytes_out,
                    client=ex.client_ip,
                    subject=ex.principal.subject if ex.principal else None,
                    decision=ex.decision or None,
                    rule=ex.rule,
                )

    # -- gateway-answered responses -----------------------------------------------------------
    def send_error(
        self,
        client: ClientConnection,
        ex: Exchange,
        status: int,
        code: str,
        reason: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
        extra: dict[str, object] | None = None,
    ) -> None:
        self.send_local(
            client, ex, status, json_error(code, reason, ex.request_id, extra), headers=headers
        )

    def send_local(
        self,
        client: ClientConnection,
        ex: Exchange,
        status: int,
        body: bytes,
        *,
        content_type: bytes = b"application/json",
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        ex.status = status
        out = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", ex.request_id.encode()),
            *headers,
        ]
        if status >= 400 and client.h11 is not None and client.h11.their_state is not h11.DONE:
            out.append((b"connection", b"close"))  # unread request body: do not reuse
        client.cork()
        try:
            client.send_response(status, out)
            client.send_data(body)
            client.send_end()
        finally:
            client.uncork()
        ex.bytes_out += len(body)

    def protocol_error(self, client: ClientConnection, status: int, message: str) -> None:
        request_id = valid_request_id(None)
        client.raw_error_response(status, json_error("bad_request" if status == 400 else _CODES.get(status, "bad_request"), message, request_id))
        self.access_log.emit(
            request_id=request_id, status=status, outcome="protocol_error", reason=message,
            client=client.client_ip,
        )
        self.metrics.observe("protocol_error", status, 0.0, 0, 0)

    async def _local(self, client: ClientConnection, ex: Exchange, path: str) -> None:
        ex.route = "gateway." + path.strip("/")
        ex.decision = "allow"
        if ex.method not in ("GET", "HEAD"):
            self.send_error(client, ex, 405, "method_not_allowed", f"{path} answers GET only",
                            headers=[(b"allow", b"GET, HEAD")])
            return
        if path == "/healthz":
            self.send_local(client, ex, 200, b'{"status":"ok"}')
        elif path == "/metrics":
            self.send_local(
                client, ex, 200, self.metrics.render(),
                content_type=b"text/plain; version=0.0.4; charset=utf-8",
            )
        else:
            problems = await self.readiness()
            if problems:
                self.send_local(client, ex, 503, orjson.dumps({"status": "not_ready", "problems": problems}))
            else:
                self.send_local(client, ex, 200, b'{"status":"ready"}')

    async def readiness(self) -> dict[str, str]:
        problems: dict[str, str] = {}
        if self.draining:
            problems["gateway"] = "draining for shutdown"
        try:
            conn = await self.pool.connect()
            try:
                conn.send(h11.Request(method=b"GET", target=b"/ok", headers=[(b"host", self.config.upstream.authority.encode())]))
                conn.send(h11.EndOfMessage())
                head = await conn.next_event(2.0)
                if type(head) is not h11.Response or head.status_code != 200:
                    problems["upstream"] = f"GET /ok answered {getattr(head, 'status_code', '?')}"
            finally:
                conn.close()
        except GatewayError as exc:
            problems["upstream"] = exc.reason
        for name, check in self.readiness_checks.items():
            problem = check()
            if problem:
                problems[name] = problem
        return problems

    # -- the proxied path ---------------------------------------------------------------------
    async def _proxy(
        self, client: ClientConnection, req: h11.Request, body: RequestBody, ex: Exchange
    ) -> None:
        info = RequestInfo(
            method=ex.method,
            target=ex.target,
            headers=tuple(client.req_headers),
            client_host=client.client_ip,
            request_id=ex.request_id,
            scheme=client.scheme,
        )
        guard = self.guard
        op = guard.classify(info)
        ex.operation = op
        ex.route = op.name
        prebody: bytes | None = None
        hooks = self.hooks
        limit = op.body_limit_bytes
        if hooks is not None:
            limit = max(limit, hooks.body_limit(ex, op))
        if limit > 0:
            prebody = await body.read_all(limit)
        decision = await guard.authorize(info, op, prebody)
        if isinstance(decision, Admit) and decision.body is not None:
            if prebody is None:
                await body.read_all(self.config.limits.max_body_bytes)  # consume what the client sent
            prebody = decision.body  # non-empty JSON: content-length is set below
        if hooks is not None:
            ex.principal = decision.principal
            rewritten = hooks.on_decision(ex, info, decision, prebody)
            if rewritten is not None and not isinstance(rewritten, bytes):
                rewritten = await rewritten
            if rewritten is not None:
                prebody = rewritten
        ex.request_body = prebody
        if isinstance(decision, Reject):
            ex.decision = "reject"
            ex.principal = decision.principal
            ex.outcome = decision.code
            self.send_error(
                client, ex, decision.status, decision.code, decision.reason,
                headers=decision.headers, extra=decision.extra or None,
            )
            return
        assert isinstance(decision, Admit)
        ex.decision = "allow"
        ex.principal = decision.principal
        ex.rule = decision.rule
        # --- policy: guard-rewritten body and end-of-exchange callback ---
        if decision.on_complete is not None:
            ex.notes["on_complete"] = decision.on_complete
        if op.resource == "gateway":
            handler = self.local_handlers.get(op.name)
            if handler is None:
                self.send_error(client, ex, 404, "not_found", f"{op.name} is not enabled on this gateway")
                return
            if prebody is None:
                prebody = await body.read_all(self.config.limits.max_body_bytes)
            local = await handler(info, decision.principal, op, prebody)
            self.send_local(client, ex, local.status, local.body, content_type=local.content_type, headers=local.headers)
            return

        has_te = False
        has_length = False
        host_header: bytes | None = None
        req_headers = client.req_headers
        for name, value in req_headers:
            if name == b"transfer-encoding":
                has_te = True
            elif name == b"content-length":
                has_length = True
            elif name == b"host":
                host_header = value
        headers = self.headers.upstream_headers(
            req_headers,
            client_ip=client.client_ip,
            scheme=client.scheme,
            client_host_header=host_header,
            request_id=ex.request_id,
            chunked=has_te and prebody is None,
            extra=decision.upstream_headers,
        )
        if prebody is not None:
            headers = [(n, v) for n, v in headers if n != b"content-length"]
            if prebody or has_te or has_length:
                headers.append((b"content-length", str(len(prebody)).encode()))
        # Pairs from the h11-parsed client request plus the gateway's own: not re-validated.
        upstream_req = h11.Request(method=req.method, target=req.target, headers=h11fast.trusted(headers))
        replayable = req.method in _RETRYABLE_METHODS and (prebody is not None or not (has_te or has_length))

        up_cfg = self.config.upstream
        conn = await self.pool.acquire()
        done = False
        try:
            for attempt in (0, 1):
                try:
                    head = await self._send_request(conn, upstream_req, body, prebody, up_cfg.response_timeout_s)
                    break
                except UpstreamUnavailable:
                    if attempt == 0 and conn.reused and replayable:
                        conn.close()
                        conn = await self.pool.connect()
                        continue
                    raise
            ex.status = head.status_code
            filt: BodyFilter | None = None
            resp_headers = h11fast.items(head.headers)
            if hooks is not None:
                filt = hooks.response_filter(ex, head.status_code, resp_headers)
            for factory in self.response_filters if filt is None else ():
                filt = factory(ex, head.status_code, head.headers)
                if filt is not None:
                    break
            out_headers = response_headers_for_client(
                resp_headers, request_id=ex.request_id, keep_length=filt is None
            )
            ex.response_headers = resp_headers
            whole: list[bytes] | None = None
            whole_limit: int = getattr(filt, "whole_body_limit", 0)
            if whole_limit > 0 and req.method != b"HEAD" and head.status_code >= 200 \
                    and head.status_code not in (204, 304):
                declared = _declared_length(resp_headers)
                if declared is not None and declared <= whole_limit:
                    whole = []
            client.cork()
            if whole is None:
                client.send_response(head.status_code, out_headers, head.reason)
            idle_s = up_cfg.read_idle_timeout_s
            flow = client.flow
            while True:
                if not conn.pending:
                    client.flush()  # nothing more to coalesce: never delay bytes on a wait
                event = await conn.next_event(idle_s)
                kind = type(event)
                if kind is h11.Data and whole is not None:
                    whole.append(event.data)  # bounded: h11 enforces the declared length
                elif kind is h11.Data:
                    data = event.data if filt is None else filt.feed(event.data)
                    if data:
                        client.send_data(data)
                        ex.bytes_out += len(data)
                    if flow.write_paused or client.corked_bytes >= CORK_FLUSH_BYTES:
                        client.flush()
                    if flow.write_paused:
                        conn.pause_for_client()
                        try:
                            await flow.drain()
                        finally:
                            conn.resume_for_client()
                elif kind is h11.EndOfMessage:
                    if whole is not None:
                        out = cast("WholeBodyFilter", filt).whole(b"".join(whole))
                        out_headers.append((b"content-length", str(len(out)).encode("ascii")))
                        client.send_response(head.status_code, out_headers, head.reason)
                        client.send_data(out)
                        ex.bytes_out += len(out)
                    elif filt is not None:
                        tail = filt.finish()
                        if tail:
                            client.send_data(tail)
                            ex.bytes_out += len(tail)
                    if hooks is not None:
                        # Still corked: in strict durability nothing of the end of this
                        # response leaves before its records are on disk.
                        waiting = hooks.before_end(ex)
                        if waiting is not None:
                            await waiting
                    client.send_end()
                    done = True
                    break
        finally:
            client.uncork()
            if done:
                self.pool.release(conn)
            else:
                conn.close()

    async def _send_request(
        self,
        conn: UpstreamConnection,
        request: h11.Request,
        body: RequestBody,
        prebody: bytes | None,
        response_timeout_s: float,
    ) -> h11.Response:
        if prebody is not None:
            if prebody:
                conn.send_all(request, h11.Data(data=prebody), h11.EndOfMessage())
            else:
                conn.send_all(request, h11.EndOfMessage())
        else:
            conn.send(request)
            idle_s = self.config.upstream.read_idle_timeout_s
            while (chunk := await body.read()) is not None:
                conn.send(h11.Data(data=chunk))
                if conn.flow.write_paused:
                    try:
                        await asyncio.wait_for(conn.flow.drain(), idle_s)
                    except asyncio.TimeoutError:
                        raise UpstreamTimeout("the upstream stopped reading the request body") from None
            conn.send(h11.EndOfMessage())
        while True:
            event = await conn.next_event(response_timeout_s)
            if type(event) is h11.Response:
                return event
            if type(event) is not h11.InformationalResponse:
                raise UpstreamUnavailable(f"unexpected upstream event {type(event).__name__}")

    # -- shutdown -----------------------------------------------------------------------------
    def close_idle(self) -> None:
        for conn in list(self.connections):
            if conn.idle():
                conn.close()

    def close(self) -> None:
        self.pool.close()
        for fn in reversed(self.on_close):
            try:
                fn()
            except Exception:
                log.exception("closing a gateway part failed")


_CODES = {408: "request_timeout", 413: "payload_too_large", 431: "header_too_large", 501: "not_implemented"}


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None


__all__ = ["BodyFilter", "Exchange", "Gateway", "HEALTH_PATHS", "ResponseFilterFactory", "json_error"]
