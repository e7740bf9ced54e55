"""Errors that carry the HTTP status the gateway answers with.

As in h11, an error raised on purpose carries a status hint; any other exception escaping a
request is a bug, answered with 500 and logged with its traceback.
"""

from __future__ import annotations

from graphwarden import _native

#: What a failing part of the gateway raises: Python errors, and a Rust panic in the native
#: module (masking, audit), which pyo3 raises as a BaseException that `except Exception` lets
#: through (a request's connection was then closed with no answer). The request path answers
#: either with a 500, and background work records it as any other failure.
FAILURES: tuple[type[BaseException], ...] = (Exception, _native.PanicException)


class GatewayError(Exception):
    """An error the gateway answers itself, with a status, a machine code and a human reason."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, reason: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class UpstreamUnavailable(GatewayError):
    """The upstream could not be reached or broke the protocol (502)."""

    status = 502
    code = "upstream_unavailable"


class UpstreamTimeout(GatewayError):
    """The upstream did not answer in time (504)."""

    status = 504
    code = "upstream_timeout"


class ClientGone(Exception):
    """The client disconnected; nothing can be answered."""


class ConfigError(Exception):
    """A configuration mistake: `path` is the key path (e.g. "listen.port"), `fix` one line of advice."""

    def __init__(self, path: str, message: str, fix: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.fix = fix

    def render(self, source: str) -> str:
        return f"{source}: error at `{self.path}`: {self.message}\n  fix: {self.fix}"


__all__ = [
    "BadRequest",
    "ClientGone",
    "ConfigError",
    "GatewayError",
    "PayloadTooLarge",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
