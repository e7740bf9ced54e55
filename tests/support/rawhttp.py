"""Blocking raw-socket HTTP helpers for protocol tests (responses parsed with h11)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import h11


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    closed: bool = False
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def connect(port: int, timeout: float = 10) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


_LEFTOVER: dict[int, bytes] = {}


def read_reply(sock: socket.socket, method: bytes = b"GET", timeout: float = 10) -> Reply:
    """Read one response; bytes of a following (pipelined) response are kept for the next call."""
    conn = h11.Connection(h11.CLIENT)
    # Pretend we sent a request so h11 parses a response.
    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    sock.settimeout(timeout)
    leftover = _LEFTOVER.pop(sock.fileno(), b"")
    if leftover:
        conn.receive_data(leftover)
    status = 0
    headers: list[tuple[bytes, bytes]] = []
    body = bytearray()
    closed = False
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                closed = True
            conn.receive_data(data)
            continue
        if type(ev) is h11.Response:
            status = ev.status_code
            headers = list(ev.headers)
        elif type(ev) is h11.InformationalResponse:
            continue
        elif type(ev) is h11.Data:
            body += ev.data
        elif type(ev) is h11.EndOfMessage:
            rest, _closed = conn.trailing_data
            if rest:
                _LEFTOVER[sock.fileno()] = bytes(rest)
            break
        elif type(ev) is h11.ConnectionClosed:
            closed = True
            break
    if not closed and any(n == b"connection" and v == b"close" for n, v in headers):
        closed = wait_closed(sock, 2)
    return Reply(status, dict(headers), bytes(body), closed, headers)


def wait_closed(sock: socket.socket, timeout: float = 5) -> bool:
    """True when the peer closes the connection within `timeout`."""
    sock.settimeout(0.2)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True
        if not data:
            return True
    return False


def request(port: int, raw: bytes, method: bytes = b"GET", timeout: float = 10) -> Reply:
    with connect(port, timeout) as s:
        s.sendall(raw)
        return read_reply(s, method, timeout)
