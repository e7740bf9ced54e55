"""HTTP pieces that own no I/O: header hygiene, request ids and the SSE event parser."""

from graphwarden.http.headers import (
    HOP_BY_HOP,
    RequestHeaderPolicy,
    response_headers_for_client,
    valid_request_id,
)
from graphwarden.http.sse import SSEEvent, SSEParser

__all__ = [
    "HOP_BY_HOP",
    "RequestHeaderPolicy",
    "SSEEvent",
    "SSEParser",
    "response_headers_for_client",
    "valid_request_id",
]
