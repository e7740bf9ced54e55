"""A tiny blocking HTTP client for gateway tests (status, headers, decoded JSON)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


def call(url: str, method: str, path: str, *, token: str | None = None, body: Any = None,
         headers: dict[str, str] | None = None, raw_body: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    h = dict(headers or {})
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    data = raw_body
    if body is not None:
        data = json.dumps(body).encode()
        h["content-type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    try:
        doc = json.loads(payload) if payload else None
    except ValueError:
        doc = payload
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, doc
