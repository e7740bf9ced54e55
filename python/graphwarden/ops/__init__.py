"""Operations: Prometheus metrics and structured JSON logs."""

from graphwarden.ops.logs import AccessLog, get_logger, setup_logging
from graphwarden.ops.metrics import Metrics

__all__ = ["AccessLog", "Metrics", "get_logger", "setup_logging"]
