"""Upstream connections: one asyncio.Protocol per connection driving an h11 client.

Reading is consumer-driven: parsed events queue in the connection, and the transport stops
reading when more than `READ_HIGH_WATER_BYTES` of body is queued or when the request's client
cannot take more (`pause_for_client`). The pool keeps idle connections LIFO and closes them
before the upstream's own keep-alive timeout would.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import Any, cast

import h11

from graphwarden.errors import UpstreamTimeout, UpstreamUnavailable
from graphwarden.flow import WRITE_HIGH_WATER_BYTES, WRITE_LOW_WATER_BYTES, WRITEV_MIN_BYTES, FlowControl

READ_HIGH_WATER_BYTES = 256 * 1024
READ_LOW_WATER_BYTES = 64 * 1024
#: Largest upstream response head (h11's default incomplete-event bound).
MAX_RESPONSE_HEAD_BYTES = 64 * 1024

_Event = Any  # an h11 event


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_loop", "h11", "transport", "flow", "_events", "_queued_bytes", "_waiter", "_closed",
        "_exc", "_pause_reasons", "idle_since", "reused", "_close_waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD_BYTES)
        self.transport: asyncio.Transport | None = None
        self.flow = FlowControl(loop)
        self._events: collections.deque[_Event] = collections.deque()
        self._queued_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._exc: Exception | None = None
        self._pause_reasons: set[str] = set()
        self.idle_since = 0.0
        self.reused = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES, WRITE_LOW_WATER_BYTES)

    def data_received(self, data: bytes) -> None:
        conn = self.h11
        conn.receive_data(data)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if type(event) is h11.Data:
                    self._queued_bytes += len(event.data)
                self._events.append(event)
                if type(event) is h11.EndOfMessage or type(event) is h11.ConnectionClosed:
                    break
        except h11.RemoteProtocolError as exc:
            self._exc = UpstreamUnavailable(f"upstream broke HTTP/1.1: {exc}")
            self._abort()
        if self._queued_bytes > READ_HIGH_WATER_BYTES:
            self._pause("buffer")
        self._wake()

    def eof_received(self) -> bool | None:
        self.h11.receive_data(b"")
        self.data_received(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._exc is None:
            self._exc = UpstreamUnavailable(
                "upstream closed the connection" + (f": {exc}" if exc else "")
            )
        self.flow.fail(self._exc)
        self._wake()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- reading ------------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _pause(self, reason: str) -> None:
        if not self._pause_reasons and self.transport is not None and not self._closed:
            self.transport.pause_reading()
        self._pause_reasons.add(reason)

    def _resume(self, reason: str) -> None:
        if reason in self._pause_reasons:
            self._pause_reasons.discard(reason)
            if not self._pause_reasons and self.transport is not None and not self._closed:
                self.transport.resume_reading()

    def pause_for_client(self) -> None:
        self._pause("client")

    def resume_for_client(self) -> None:
        self._resume("client")

    async def next_event(self, timeout_s: float) -> _Event:
        """The next h11 event; raises UpstreamTimeout / UpstreamUnavailable."""
        while not self._events:
            if self._exc is not None:
                raise self._exc
            if self._closed:
                raise UpstreamUnavailable("upstream closed the connection")
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout_s, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        event = self._events.popleft()
        if type(event) is h11.Data:
            self._queued_bytes -= len(event.data)
            if self._queued_bytes < READ_LOW_WATER_BYTES:
                self._resume("buffer")
        elif type(event) is h11.ConnectionClosed:
            raise UpstreamUnavailable("upstream closed the connection mid-response")
        return event

    @property
    def pending(self) -> bool:
        """An event is already parsed and waiting: `next_event` will not block."""
        return bool(self._events)

    # -- writing ------------------------------------------------------------------------------
    def send_all(self, *events: _Event) -> None:
        """Send several events in one write (a request head with its whole body and end)."""
        if self._closed or self.transport is None:
            raise self._exc or UpstreamUnavailable("upstream connection is closed")
        try:
            data = b"".join(self.h11.send(e) or b"" for e in events)
        except h11.LocalProtocolError as exc:
            raise UpstreamUnavailable(f"cannot send request upstream: {exc}") from None
        if data:
            self.transport.write(data)

    def send(self, event: _Event) -> None:
        if self._closed or self.transport is None:
            raise self._exc or UpstreamUnavailable("upstream connection is closed")
        try:
            # h11's pieces as they are: `send` would join a body chunk into a copy
            parts = self.h11.send_with_data_passthrough(event)
        except h11.LocalProtocolError as exc:
            raise UpstreamUnavailable(f"cannot send request upstream: {exc}") from None
        if parts:
            if len(parts) == 1:
                self.transport.write(parts[0])
            elif sum(len(p) for p in parts) >= WRITEV_MIN_BYTES:
                self.transport.writelines(parts)  # a large body chunk is not copied again
            else:
                self.transport.write(b"".join(parts))

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._closed and self._exc is None

    def reusable(self) -> bool:
        c = self.h11
        return (
            self.alive
            and c.our_state is h11.DONE
            and c.their_state is h11.DONE
            and not self._events
        )

    def _abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("upstream did not answer in time"))


class UpstreamPool:
    """Keep-alive connections to one upstream origin."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        server_hostname: str | None,
        connect_timeout_s: float,
        max_idle: int,
        idle_timeout_s: float,
    ) -> None:
        self.host = host
        self.port = port
        self._tls = tls
        self._server_hostname = server_hostname
        self._connect_timeout_s = connect_timeout_s
        self._max_idle = max_idle
        self._idle_timeout_s = idle_timeout_s
        self._idle: list[UpstreamConnection] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self.connects = 0

    async def acquire(self) -> UpstreamConnection:
        now = time.monotonic()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.alive and now - conn.idle_since < self._idle_timeout_s:
                conn.reused = True
                return conn
            conn.close()
        return await self.connect()

    async def connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConnection(loop),
                    self.host,
                    self.port,
                    ssl=self._tls,
                    server_hostname=self._server_hostname if self._tls else None,
                ),
                self._connect_timeout_s,
            )
        except asyncio.TimeoutError:
            raise UpstreamTimeout(
                f"connecting to the upstream {self.host}:{self.port} timed out"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamUnavailable(
                f"cannot connect to the upstream {self.host}:{self.port}: {exc}"
            ) from None
        self.connects += 1
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        if not conn.reusable() or len(self._idle) >= self._max_idle:
            conn.close()
            return
        conn.h11.start_next_cycle()
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(self._idle_timeout_s, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        keep = []
        for conn in self._idle:
            if conn.alive and now - conn.idle_since < self._idle_timeout_s:
                keep.append(conn)
            else:
                conn.close()
        self._idle = keep
        if keep:
            self._sweeper = asyncio.get_running_loop().call_later(self._idle_timeout_s / 2, self._sweep)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    @property
    def idle_count(self) -> int:
        return len(self._idle)


__all__ = ["READ_HIGH_WATER_BYTES", "UpstreamConnection", "UpstreamPool"]
