"""Pooled keep-alive h11 client connections to the LangGraph server."""

from graphwarden.upstream.pool import UpstreamConnection, UpstreamPool

__all__ = ["UpstreamConnection", "UpstreamPool"]
