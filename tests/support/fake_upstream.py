"""A small scriptable HTTP/1.1 upstream (asyncio + h11) for protocol tests of the proxy.

Routes:
  /echo            → JSON: method, target, headers, body sha256 and length (reads the whole body)
  /sse?n=N&gap=S   → text/event-stream with N events (CRLF, ids, a heartbeat comment), S s apart
  /big?bytes=N     → N bytes of body in 64 KiB chunks, chunked encoding
  /slow?delay=S    → waits S seconds before the response head
  /hang-body       → sends the head, then one chunk, then nothing
  /drop            → closes the connection without answering
  /short-json      → declares a 100-byte JSON body, sends 10 bytes, closes
  /status?code=N   → empty response with that status
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from urllib.parse import parse_qs, urlsplit

import h11


class _Conn(asyncio.Protocol):
    def __init__(self, app: FakeUpstream) -> None:
        self.app = app
        self.h11 = h11.Connection(h11.SERVER)
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.app.connections += 1
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.h11.receive_data(data)
        self.queue.put_nowait(None)

    def eof_received(self) -> None:
        self.h11.receive_data(b"")
        self.queue.put_nowait(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)
        if self.task:
            self.task.cancel()

    async def next_event(self) -> object:
        while True:
            ev = self.h11.next_event()
            if ev is h11.NEED_DATA:
                await self.queue.get()
                continue
            return ev

    def send(self, ev: object) -> None:
        data = self.h11.send(ev)  # type: ignore[arg-type]
        if data and self.transport:
            self.transport.write(data)

    async def run(self) -> None:
        try:
            while True:
                ev = await self.next_event()
                if type(ev) is not h11.Request:
                    self.transport.close()  # type: ignore[union-attr]
                    return
                body = bytearray()
                while True:
                    e = await self.next_event()
                    if type(e) is h11.Data:
                        body += e.data
                    elif type(e) is h11.EndOfMessage:
                        break
                    else:
                        return
                self.app.requests.append((ev, bytes(body)))
                keep = await self.respond(ev, bytes(body))
                if not keep or self.h11.our_state is not h11.DONE:
                    self.transport.close()  # type: ignore[union-attr]
                    return
                self.h11.start_next_cycle()
        except (asyncio.CancelledError, h11.ProtocolError):
            if self.transport:
                self.transport.close()

    async def respond(self, req: h11.Request, body: bytes) -> bool:
        url = urlsplit(req.target.decode())
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/echo" or path == "/ok":
            payload = json.dumps({
                "method": req.method.decode(),
                "target": req.target.decode(),
                "headers": [[n.decode(), v.decode("latin-1")] for n, v in req.headers],
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }).encode()
            self.send(h11.Response(status_code=200, headers=[("content-type", "application/json"), ("content-length", str(len(payload))), ("location", "/echo/1")]))
            self.send(h11.Data(data=payload))
            self.send(h11.EndOfMessage())
        elif path == "/sse":
            n, gap = int(q.get("n", "5")), float(q.get("gap", "0"))
            self.send(h11.Response(status_code=200, headers=[("content-type", "text/event-stream"), ("location", "/runs/1/stream"), ("content-location", "/threads/t/runs/1")]))
            start = int(req_header(req, b"last-event-id") or b"-1") + 1
            for i in range(start, n):
                if i == 1:
                    self.send(h11.Data(data=b": heartbeat\r\n\r\n"))
                frame = b"event: values\r\ndata: {\"i\": %d}\r\nid: %d\r\n\r\n" % (i, i)
                self.send(h11.Data(data=frame))
                if gap:
                    await asyncio.sleep(gap)
            self.send(h11.EndOfMessage())
        elif path == "/big":
            total = int(q.get("bytes", "1048576"))
            self.send(h11.Response(status_code=200, headers=[("content-type", "application/octet-stream"), ("transfer-encoding", "chunked")]))
            sent = 0
            chunk = b"x" * 65536
            while sent < total:
                part = chunk[: min(65536, total - sent)]
                self.send(h11.Data(data=part))
                sent += len(part)
                await self.app.wait_writable(self)
            self.send(h11.EndOfMessage())
        elif path == "/slow":
            await asyncio.sleep(float(q.get("delay", "2")))
            self.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
            self.send(h11.Data(data=b"ok"))
            self.send(h11.EndOfMessage())
        elif path == "/hang-body":
            self.send(h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]))
            self.send(h11.Data(data=b"partial"))
            await asyncio.sleep(3600)
        elif path == "/drop":
            return False
        elif path == "/short-json":
            self.send(h11.Response(status_code=200, headers=[("content-type", "application/json"), ("content-length", "100")]))
            self.send(h11.Data(data=b'{"partial"'))
            await asyncio.sleep(0.05)
            return False
        elif path == "/status":
            self.send(h11.Response(status_code=int(q.get("code", "204")), headers=[("content-length", "0")] if int(q.get("code", "204")) not in (204, 304) else []))
            self.send(h11.EndOfMessage())
        else:
            self.send(h11.Response(status_code=404, headers=[("content-length", "0")]))
            self.send(h11.EndOfMessage())
        return True


def req_header(req: h11.Request, name: bytes) -> bytes | None:
    for n, v in req.headers:
        if n == name:
            return v
    return None


class FakeUpstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[tuple[h11.Request, bytes]] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Conn(self), "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]

    async def wait_writable(self, conn: _Conn) -> None:
        t = conn.transport
        while t is not None and not t.is_closing() and t.get_write_buffer_size() > 256 * 1024:
            await asyncio.sleep(0.005)

    def close(self) -> None:
        if self.server:
            self.server.close()
