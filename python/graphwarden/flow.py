"""Write-side flow control for one transport (the uvicorn/aiohttp FlowControl shape).

`pause_writing`/`resume_writing` are called by the transport when its write buffer crosses the
high/low watermarks; writers `await drain()` after writing. Idempotent, and `fail` wakes every
waiter when the connection is lost so nothing hangs.
"""

from __future__ import annotations

import asyncio

#: Transport write-buffer watermarks. asyncio's defaults are 64 KiB / 16 KiB; an SSE client that
#: reads slowly holds at most this much of the gateway's memory before upstream reading stops.
WRITE_HIGH_WATER_BYTES = 256 * 1024
WRITE_LOW_WATER_BYTES = 64 * 1024
#: A corked response (see ClientConnection.cork) is flushed once this much is collected.
CORK_FLUSH_BYTES = 64 * 1024
#: Body data of at least this size leaves as h11's pieces (chunk size line, the data itself,
#: CRLF) in a vectored write, not joined into a copy; smaller writes, and corks holding more than
#: WRITEV_MAX_PIECES pieces, are joined (a small copy costs less than the transport's per-buffer
#: work).
WRITEV_MIN_BYTES = 16 * 1024
WRITEV_MAX_PIECES = 64


class FlowControl:
    __slots__ = ("_loop", "write_paused", "_waiter", "_exc")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.write_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._exc: BaseException | None = None

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        self._exc = exc
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def drain(self) -> None:
        if self._exc is not None:
            raise self._exc
        if not self.write_paused:
            return
        if self._waiter is None:
            self._waiter = self._loop.create_future()
        await asyncio.shield(self._waiter)


__all__ = ["WRITE_HIGH_WATER_BYTES", "WRITE_LOW_WATER_BYTES", "FlowControl"]