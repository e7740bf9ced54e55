"""The audit trail: a BLAKE3-chained, Ed25519-checkpointed, crash-safe log written by the Rust
extension (docs/AUDIT_FORMAT.md). One chain per worker process.

Integration: `open_from_config(config, worker_index)` once per worker; `log.append(kind, body)`
per event (body carries `request_id`, `thread_id`, `run_id` when known); in strict mode
`await log.wait_durable(seq)` before releasing the response; `log.readiness_problem` as
`gateway.readiness_checks["audit"]`; `AuditUnavailable` (503) when the trail cannot be written.
"""

from __future__ import annotations

from graphwarden.audit._log import (
    AuditError,
    AuditLog,
    AuditUnavailable,
    Durability,
    canonical_body,
    default_chain_id,
)
from graphwarden.audit._verify import VerifyReport, verify
from graphwarden.config import GatewayConfig


def open_from_config(config: GatewayConfig, worker_index: int = 0) -> AuditLog | None:
    """Open this worker's chain as configured, or None when `audit.enabled` is false."""
    a = config.audit
    if not a.enabled:
        return None
    return AuditLog.open(
        a.resolved_dir(config.state.dir),
        key_file=a.resolved_key_file(config.state.dir),
        chain=default_chain_id(worker_index, a.chain_prefix),
        mode=a.durability,
        anchor_dir=a.anchor_dir,
        checkpoint_every=a.checkpoint_every,
        checkpoint_interval_s=a.checkpoint_interval_s,
        idle_checkpoint_s=a.idle_checkpoint_s,
        batch_window_s=a.batch_window_s,
        segment_max_bytes=a.segment_max_bytes,
        retention_s=None if a.retention_days is None else a.retention_days * 86_400.0,
    )


__all__ = [
    "AuditError",
    "AuditLog",
    "AuditUnavailable",
    "Durability",
    "VerifyReport",
    "canonical_body",
    "default_chain_id",
    "open_from_config",
    "verify",
]
