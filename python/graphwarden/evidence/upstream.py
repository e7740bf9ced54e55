"""Requests the gateway makes to the upstream on its own behalf (history collection after a run).

They go through the same pool and carry the same injected upstream credential as proxied
requests, never a client's headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import h11
import orjson

from graphwarden.errors import UpstreamUnavailable
from graphwarden.http import h11fast

if TYPE_CHECKING:
    from graphwarden.gateway import Gateway


async def upstream_json(
    gw: Gateway, method: str, path: str, body: Any = None, *, timeout_s: float = 30.0,
    max_bytes: int = 64 * 1024 * 1024,
) -> tuple[int, Any]:
    """One JSON request to the upstream; returns (status, decoded body or None)."""
    data = orjson.dumps(body) if body is not None else b""
    headers: list[tuple[bytes, bytes]] = [
        (b"host", gw.config.upstream.authority.encode()),
        (b"accept", b"application/json"),
    ]
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += gw.headers.inject_headers
    conn = await gw.pool.acquire()
    ok = False
    try:
        req = h11.Request(method=method.encode(), target=path.encode(), headers=h11fast.trusted(headers))
        if data:
            conn.send_all(req, h11.Data(data=data), h11.EndOfMessage())
        else:
            conn.send_all(req, h11.EndOfMessage())
        head = await conn.next_event(timeout_s)
        while type(head) is h11.InformationalResponse:
            head = await conn.next_event(timeout_s)
        if type(head) is not h11.Response:
            raise UpstreamUnavailable(f"unexpected upstream event {type(head).__name__}")
        parts: list[bytes] = []
        size = 0
        while True:
            ev = await conn.next_event(timeout_s)
            if type(ev) is h11.Data:
                size += len(ev.data)
                if size > max_bytes:
                    raise UpstreamUnavailable(f"upstream answer to {path} is larger than {max_bytes} bytes")
                parts.append(ev.data)
            elif type(ev) is h11.EndOfMessage:
                break
        ok = True
        raw = b"".join(parts)
        try:
            return head.status_code, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return head.status_code, None
    finally:
        if ok:
            gw.pool.release(conn)
        else:
            conn.close()


__all__ = ["upstream_json"]
