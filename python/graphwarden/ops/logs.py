"""Structured JSON logs on stderr, one object per line, always with the request id when there
is one. Values logged here are gateway facts (ids, routes, statuses, sizes), never bodies."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "info") -> None:
    root = logging.getLogger("graphwarden")
    root.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"graphwarden.{name}")


class AccessLog:
    """One line per completed request."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._log = get_logger("access")

    def emit(self, **fields: Any) -> None:
        if self.enabled:
            fields["ts_end"] = round(time.time(), 6)
            self._log.info("request", extra={"fields": fields})


__all__ = ["AccessLog", "JsonFormatter", "get_logger", "setup_logging"]
