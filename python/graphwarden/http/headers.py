"""Header hygiene between client, gateway and upstream.

Request headers dropped before the upstream sees them:
- hop-by-hop headers (RFC 9110 7.6.1): Connection and every header it names, Keep-Alive,
  Proxy-Connection, TE, Trailer, Transfer-Encoding (the gateway re-frames), Upgrade, and the
  proxy credentials Proxy-Authorization / Proxy-Authenticate;
- credentials and identity/trust signals the LangGraph server acts on (read from langgraph-api
  0.16: `auth/custom.py`, `auth/langsmith/backend.py`, `utils/headers.py`): Authorization, Cookie,
  x-api-key, x-service-key, x-tenant-id, x-user-id, x-auth-scheme, the langsmith-* tracing
  headers and `baggage` (which can inject run metadata), and the forwarding headers the gateway
  sets itself;
- every other client `x-*` header unless allowed by `upstream.forward_x_headers`, because
  langgraph-api copies all x-* request headers into the run's `configurable`, where graph code
  may take them for facts about the caller.
Expect is answered by the gateway (100-continue) and not forwarded.
"""

from __future__ import annotations

import fnmatch
import os
import re
import uuid
from collections.abc import Iterable, Sequence

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)

#: Client request headers that never reach the upstream (besides hop-by-hop ones).
STRIPPED_REQUEST_HEADERS = frozenset(
    {
        b"host",
        b"expect",
        b"authorization",
        b"cookie",
        b"x-api-key",
        b"x-service-key",
        b"x-tenant-id",
        b"x-user-id",
        b"x-auth-scheme",
        b"langsmith-trace",
        b"langsmith-project",
        b"langsmith-tags",
        b"langsmith-metadata",
        b"baggage",
        b"forwarded",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-real-ip",
        b"x-request-id",
    }
)

#: Upstream response headers not passed to the client (besides hop-by-hop ones).
STRIPPED_RESPONSE_HEADERS = frozenset({b"x-request-id"})

_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._:-]{8,128}")


class _RequestIds:
    """New request ids: 16 random hex digits drawn once per process (re-drawn after fork) and a
    counter, unique without a system call per request (uuid4 reads os.urandom each time)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return f"{self._prefix}{self._n:012x}"


_ids = _RequestIds()
os.register_at_fork(after_in_child=_ids.reset)


def valid_request_id(value: bytes | None) -> str:
    """The client's x-request-id if well formed (8-128 of [A-Za-z0-9._:-]), else a new one."""
    if value is not None and _REQUEST_ID_RE.fullmatch(value):
        return value.decode("ascii")
    return _ids.next()


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


class RequestHeaderPolicy:
    """Builds upstream request headers from a client's. Header names arrive lower-cased (h11)."""

    __slots__ = ("_inject", "_inject_names", "_x_globs", "_x_cache", "_authority")

    def __init__(
        self,
        *,
        upstream_authority: str,
        inject: Sequence[tuple[bytes, bytes]] = (),
        forward_x_headers: Sequence[str] = (),
    ) -> None:
        self._authority = upstream_authority.encode("ascii")
        self._inject = list(inject)
        self._inject_names = frozenset(n for n, _ in inject)
        self._x_globs = [g.lower() for g in forward_x_headers]
        self._x_cache: dict[bytes, bool] = {}

    @property
    def inject_headers(self) -> list[tuple[bytes, bytes]]:
        """The configured upstream credential headers (for the gateway's own requests)."""
        return list(self._inject)

    def _x_allowed(self, name: bytes) -> bool:
        hit = self._x_cache.get(name)
        if hit is None:
            text = name.decode("latin-1")
            hit = any(fnmatch.fnmatchcase(text, g) for g in self._x_globs)
            if len(self._x_cache) < 1024:
                self._x_cache[name] = hit
        return hit

    def upstream_headers(
        self,
        client_headers: Sequence[tuple[bytes, bytes]],
        *,
        client_ip: str,
        scheme: str,
        client_host_header: bytes | None,
        request_id: str,
        chunked: bool,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> list[tuple[bytes, bytes]]:
        conn_tokens = _connection_tokens(client_headers) if any(
            n == b"connection" for n, _ in client_headers
        ) else ()
        out: list[tuple[bytes, bytes]] = [(b"host", self._authority)]
        xff: bytes | None = None
        extra_names = {n for n, _ in extra}
        for name, value in client_headers:
            if (
                name in HOP_BY_HOP
                or name in STRIPPED_REQUEST_HEADERS
                or name in conn_tokens
                or name in self._inject_names
                or name in extra_names
            ):
                continue
            if name == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
                continue
            if name[:2] == b"x-" and not self._x_allowed(name):
                continue
            out.append((name, value))
        ip = client_ip.encode("ascii")
        out.append((b"x-forwarded-for", ip if xff is None else xff + b", " + ip))
        out.append((b"x-forwarded-proto", scheme.encode("ascii")))
        if client_host_header is not None:
            out.append((b"x-forwarded-host", client_host_header))
        out.append((b"x-request-id", request_id.encode("ascii")))
        if chunked:
            out.append((b"transfer-encoding", b"chunked"))
        out.extend(extra)
        out.extend(self._inject)
        return out


def response_headers_for_client(
    upstream_headers: Sequence[tuple[bytes, bytes]],
    *,
    request_id: str,
    keep_length: bool,
) -> list[tuple[bytes, bytes]]:
    """Client response headers: hop-by-hop removed, x-request-id set. `keep_length=False` when the
    gateway rewrites the body (the length changes; h11 then frames with chunked encoding)."""
    conn_tokens = _connection_tokens(upstream_headers)
    out: list[tuple[bytes, bytes]] = []
    for name, value in upstream_headers:
        if name in HOP_BY_HOP or name in STRIPPED_RESPONSE_HEADERS or name in conn_tokens:
            continue
        if name == b"content-length" and not keep_length:
            continue
        out.append((name, value))
    out.append((b"x-request-id", request_id.encode("ascii")))
    return out


__all__ = [
    "HOP_BY_HOP",
    "STRIPPED_REQUEST_HEADERS",
    "RequestHeaderPolicy",
    "response_headers_for_client",
    "valid_request_id",
]
