"""graphwarden: a SOC 2 guardrail gateway for LangGraph agent servers."""

from graphwarden._native import __version__

__all__ = ["__version__"]
