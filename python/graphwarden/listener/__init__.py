"""The listening side: sockets, worker processes, TLS, graceful drain, client connections."""

from graphwarden.listener.connection import ClientConnection, RequestBody
from graphwarden.listener.server import run_gateway, serve_forever, start_gateway

__all__ = ["ClientConnection", "RequestBody", "run_gateway", "serve_forever", "start_gateway"]
