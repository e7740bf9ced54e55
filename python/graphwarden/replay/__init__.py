"""Session replay: rebuild a graph execution from the audit trail (see docs/REPLAY.md)."""

from graphwarden.replay.model import QueryKind, Replay, UnknownId, build_replay, select_records
from graphwarden.replay.source import (
    AuditRecord,
    JsonlSource,
    RecordSource,
    ReplaySourceError,
    Verification,
    open_source,
)

__all__ = [
    "AuditRecord",
    "JsonlSource",
    "QueryKind",
    "RecordSource",
    "Replay",
    "ReplaySourceError",
    "UnknownId",
    "Verification",
    "build_replay",
    "open_source",
    "select_records",
]
