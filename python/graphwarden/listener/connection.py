"""One asyncio.Protocol per client connection, driving an h11 server connection.

Per-connection state (transport, h11 state machine, timers) is built in `connection_made`;
per-request state (the body channel and the request task) lives in `RequestBody` and the task
the gateway runs for it. Timers: a keep-alive timer while idle between requests, a header-read
timer from the first byte of a request head until the head is complete (slowloris), and a body
timer between chunks (enforced by `RequestBody.read`).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from typing import TYPE_CHECKING, cast

import h11

from graphwarden.errors import BadRequest, ClientGone, GatewayError, PayloadTooLarge
from graphwarden.flow import (
    CORK_FLUSH_BYTES,
    WRITE_HIGH_WATER_BYTES,
    WRITE_LOW_WATER_BYTES,
    WRITEV_MAX_PIECES,
    WRITEV_MIN_BYTES,
    FlowControl,
)
from graphwarden.http import h11fast

if TYPE_CHECKING:
    from graphwarden.gateway import Gateway

#: Request body bytes queued before the gateway stops reading the client.
BODY_HIGH_WATER_BYTES = 256 * 1024
BODY_LOW_WATER_BYTES = 64 * 1024

_TOO_MANY = b'{"error":"too_many_connections","reason":"the gateway is at its connection limit"}'
_CANNED_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_MANY), _TOO_MANY)
)


class _Timer(enum.Enum):
    NONE = 0
    KEEPALIVE = 1
    HEADER = 2


class RequestBody:
    """The request body as it arrives, consumed by the request task (flow-controlled)."""

    __slots__ = (
        "_conn", "_chunks", "_queued", "done", "_exc", "_waiter", "received", "_timeout_s",
        "_max_bytes",
    )

    def __init__(self, conn: ClientConnection, *, timeout_s: float, max_bytes: int) -> None:
        self._conn = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._queued = 0
        self.done = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.received = 0
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self._max_bytes:
            self.fail(PayloadTooLarge(f"request body is larger than {self._max_bytes} bytes"))
            return
        self._chunks.append(data)
        self._queued += len(data)
        if self._queued > BODY_HIGH_WATER_BYTES:
            self._conn.pause_reading("body")
        self._wake()

    def end(self) -> None:
        self.done = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if self._exc is None:
            self._exc = exc
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes | None:
        """Next chunk, or None at the end of the body."""
        while not self._chunks:
            if self._exc is not None:
                raise self._exc
            if self.done:
                return None
            self._conn.maybe_send_100_continue()
            loop = self._conn.loop
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(self._timeout_s, _body_timeout, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        if self._exc is not None:
            raise self._exc
        chunk = self._chunks.popleft()
        self._queued -= len(chunk)
        if self._queued < BODY_LOW_WATER_BYTES:
            self._conn.resume_reading("body")
        return chunk

    async def read_all(self, limit_bytes: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while (chunk := await self.read()) is not None:
            size += len(chunk)
            if size > limit_bytes:
                raise PayloadTooLarge(f"request body is larger than {limit_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)


def _body_timeout(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(
            GatewayError("the request body stalled", status=408, code="request_timeout")
        )


class ClientConnection(asyncio.Protocol):
    def __init__(self, gateway: Gateway, scheme: str) -> None:
        self.gw = gateway
        self.scheme = scheme
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.client_ip = "0.0.0.0"
        self.h11: h11.Connection | None = None
        self.flow = FlowControl(self.loop)
        self.body: RequestBody | None = None
        self.task: asyncio.Task[None] | None = None
        self.response_started = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = _Timer.NONE
        self._read_pause: set[str] = set()
        self._closed = False
        self._rejected = False
        self.sent_100 = False
        self._cork: list[bytes] | None = None
        self._corked_bytes = 0
        #: The current request's header fields as (lower-cased name, value) pairs.
        self.req_headers: list[tuple[bytes, bytes]] = []

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have its methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        gw = self.gw
        metrics = gw.metrics
        metrics.connections_total += 1
        if len(gw.connections) >= gw.config.listen.max_connections or gw.draining:
            metrics.connections_rejected += 1
            self._rejected = True
            transport.write(_CANNED_503)
            transport.close()
            return
        gw.connections.add(self)
        metrics.open_connections = len(gw.connections)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client_ip = str(peer[0])
        transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES, WRITE_LOW_WATER_BYTES)
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=gw.config.limits.max_header_bytes
        )
        self._arm(_Timer.KEEPALIVE)

    def data_received(self, data: bytes) -> None:
        conn = self.h11
        if conn is None:
            return
        conn.receive_data(data)
        if self.task is None:
            if self._timer_kind is _Timer.KEEPALIVE:
                self._arm(_Timer.HEADER)
            self._next_request()
        else:
            self._pump_body()

    def eof_received(self) -> bool | None:
        if self.h11 is not None:
            self.h11.receive_data(b"")
            self.data_received(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._rejected:
            return
        gw = self.gw
        gw.connections.discard(self)
        gw.metrics.open_connections = len(gw.connections)
        self._cancel_timer()
        gone = ClientGone("client disconnected")
        self.flow.fail(gone)
        if self.body is not None:
            self.body.fail(gone)
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- reading ------------------------------------------------------------------------------
    def pause_reading(self, reason: str) -> None:
        if not self._read_pause and self.transport is not None and not self._closed:
            self.transport.pause_reading()
        self._read_pause.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self._read_pause:
            self._read_pause.discard(reason)
            if not self._read_pause and self.transport is not None and not self._closed:
                self.transport.resume_reading()

    def _next_request(self) -> None:
        conn = self.h11
        assert conn is not None
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            self._protocol_error(exc.error_status_hint, str(exc))
            return
        if event is h11.NEED_DATA:
            return
        if type(event) is h11.Request:
            self._cancel_timer()
            self.req_headers = h11fast.items(event.headers)
            problem = self._check_head(event)
            if problem is not None:
                self._protocol_error(*problem)
                return
            limits = self.gw.config.limits
            self.body = RequestBody(
                self, timeout_s=limits.body_read_timeout_s, max_bytes=limits.max_body_bytes
            )
            self.response_started = False
            self.sent_100 = False
            self.task = self.loop.create_task(self.gw.handle(self, event, self.body))
            self.task.add_done_callback(self._request_done)
            self._pump_body()
        elif type(event) is h11.ConnectionClosed:
            self.close()
        else:  # PAUSED cannot happen with no task; anything else is a state-machine bug
            self.close()

    def _check_head(self, request: h11.Request) -> tuple[int, str] | None:
        headers = self.req_headers
        limits = self.gw.config.limits
        if len(headers) > limits.max_header_count:
            return 431, f"more than {limits.max_header_count} header fields"
        # h11 bounds only an *incomplete* head; a complete one that arrived in one read is
        # measured here so the limit holds whatever the TCP segmentation.
        head_bytes = len(request.target) + sum(len(n) + len(v) + 4 for n, v in headers)
        if head_bytes > limits.max_header_bytes:
            return 431, f"request head is larger than {limits.max_header_bytes} bytes"
        lengths = 0
        chunked = False
        for name, _ in headers:
            if name == b"content-length":
                lengths += 1
            elif name == b"transfer-encoding":
                chunked = True
        # Request smuggling: a message with both framings, or several lengths, is refused
        # (RFC 9112 6.1/6.3 allow rejecting; a proxy that forwards them invites desync).
        if chunked and lengths:
            return 400, "both Content-Length and Transfer-Encoding are present"
        if lengths > 1:
            return 400, "more than one Content-Length header"
        for name, value in headers:
            if name == b"content-length" and int(value) > limits.max_body_bytes:
                return 413, f"request body is larger than {limits.max_body_bytes} bytes"
        return None

    def _pump_body(self) -> None:
        conn = self.h11
        body = self.body
        if conn is None or body is None or body.done:
            return
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                body.fail(BadRequest(f"malformed request body: {exc}"))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            kind = type(event)
            if kind is h11.Data:
                body.feed(cast(h11.Data, event).data)
            elif kind is h11.EndOfMessage:
                body.end()
                return
            elif kind is h11.ConnectionClosed:
                body.fail(ClientGone("client closed the connection mid-body"))
                return

    def maybe_send_100_continue(self) -> None:
        conn = self.h11
        if conn is not None and conn.client_is_waiting_for_100_continue and not self.sent_100:
            self.sent_100 = True
            self._write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))

    # -- writing ------------------------------------------------------------------------------
    def _write(self, data: bytes | None) -> None:
        if data:
            self._write_parts([data], len(data))

    def _write_parts(self, parts: list[bytes], size: int) -> None:
        """Write `parts` in order (`size`: about how many bytes), or add them to the cork."""
        if self.transport is None or self._closed:
            return
        cork = self._cork
        if cork is None:
            if len(parts) == 1:
                self.transport.write(parts[0])
            else:
                self.transport.writelines(parts)
        else:
            cork.extend(parts)
            self._corked_bytes += size
            if self._corked_bytes >= CORK_FLUSH_BYTES:
                self.flush()

    def cork(self) -> None:
        """Collect writes until `flush`/`uncork`: a response head, its body and its end usually
        leave in one send() instead of three."""
        if self._cork is None:
            self._cork = []
            self._corked_bytes = 0

    def flush(self) -> None:
        cork = self._cork
        if cork:
            transport = self.transport
            if transport is not None and not self._closed:
                if len(cork) == 1:
                    transport.write(cork[0])
                elif self._corked_bytes > WRITEV_MIN_BYTES and len(cork) <= WRITEV_MAX_PIECES:
                    transport.writelines(cork)  # large pieces are not copied again (writev)
                else:
                    transport.write(b"".join(cork))  # small or many pieces: one copy is cheaper
            cork.clear()
            self._corked_bytes = 0

    @property
    def corked_bytes(self) -> int:
        return self._corked_bytes

    def uncork(self) -> None:
        self.flush()
        self._cork = None

    def send_response(self, status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b"") -> None:
        """`headers` must come from parsed messages or the gateway's own code (not re-validated)."""
        assert self.h11 is not None
        self.response_started = True
        self._write(self.h11.send(h11.Response(status_code=status, headers=h11fast.trusted(headers), reason=reason)))

    def send_data(self, data: bytes) -> None:
        if data:
            assert self.h11 is not None
            # The pieces as they are (chunk size line, `data` itself, CRLF): h11's `send` would
            # join them into a copy of `data`.
            parts = self.h11.send_with_data_passthrough(h11.Data(data=data))
            if not parts:
                return
            if len(data) >= WRITEV_MIN_BYTES:
                self._write_parts(parts, len(data))
            else:
                self._write(parts[0] if len(parts) == 1 else b"".join(parts))

    def send_end(self) -> None:
        assert self.h11 is not None
        self._write(self.h11.send(h11.EndOfMessage()))

    @property
    def closed(self) -> bool:
        return self._closed

    # -- lifecycle ----------------------------------------------------------------------------
    def _request_done(self, task: asyncio.Task[None]) -> None:
        self.task = None
        self.body = None
        conn = self.h11
        if self._closed or conn is None:
            return
        if not task.cancelled() and task.exception() is not None:
            self.abort()
            return
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE and not self.gw.draining:
            conn.start_next_cycle()
            self._read_pause.clear()
            if self.transport is not None:
                self.transport.resume_reading()
            self._arm(_Timer.KEEPALIVE)
            if conn.trailing_data[0]:  # a pipelined request is already buffered
                self._arm(_Timer.HEADER)
                self._next_request()
        else:
            self.close()

    def _protocol_error(self, status: int, message: str) -> None:
        self.gw.metrics.protocol_errors += 1
        self.gw.protocol_error(self, status, message)
        self.close()

    def _arm(self, kind: _Timer) -> None:
        self._cancel_timer()
        limits = self.gw.config.limits
        delay = limits.keepalive_timeout_s if kind is _Timer.KEEPALIVE else limits.header_read_timeout_s
        self._timer_kind = kind
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_kind = _Timer.NONE

    def _on_timer(self) -> None:
        kind = self._timer_kind
        self._timer = None
        self._timer_kind = _Timer.NONE
        if self.task is not None:
            return
        if kind is _Timer.HEADER:
            self.gw.protocol_error(self, 408, "the request head was not received in time")
        self.close()

    def idle(self) -> bool:
        return self.task is None

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self._closed = True
            self.transport.abort()

    def raw_error_response(self, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """An error answered outside h11's normal flow (after a protocol error): HTTP/1.1, close."""
        conn = self.h11
        if conn is not None and conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(extra or []),
            ]
            try:
                self._write(conn.send(h11.Response(status_code=status, headers=headers)))
                self._write(conn.send(h11.Data(data=body)))
                self._write(conn.send(h11.EndOfMessage()))
                return
            except h11.LocalProtocolError:
                pass
        reason = {400: b"Bad Request", 408: b"Request Timeout", 413: b"Content Too Large", 431: b"Request Header Fields Too Large"}.get(status, b"Error")
        self._write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
            % (status, reason, len(body), body)
        )




__all__ = ["BODY_HIGH_WATER_BYTES", "ClientConnection", "RequestBody"]
