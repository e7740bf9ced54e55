"""Builds a worker's gateway from configuration: identity + policy guard, approvals, masking,
the audit log and the evidence hooks, wired together.

`serve` creates one `Assembly` before forking; each worker process calls `build_guard` (through
`run_gateway`'s guard factory) and then `install` (as a gateway hook), so threads, SQLite
connections and the audit writer are created inside the worker that uses them.
"""

from __future__ import annotations

from typing import Any

from graphwarden.config import GatewayConfig
from graphwarden.guard import AllowAllGuard, Guard
from graphwarden.ops import get_logger

log = get_logger("assembly")


class Assembly:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.guard: Guard | None = None
        self.approvals: Any = None
        self.masker: Any = None
        self.audit: Any = None
        self.evidence: Any = None

    # -- the parts ------------------------------------------------------------------------------
    def build_guard(self, config: GatewayConfig) -> Guard:
        if config.insecure_passthrough:
            log.warning("insecure_passthrough is on: requests reach the upstream without identity, policy, masking or audit")
            self.guard = AllowAllGuard()
            return self.guard
        from graphwarden.approvals import ApprovalService
        from graphwarden.policy.guard import build_guard

        self.approvals = ApprovalService.from_config(config, mask=self._mask_for_approvers)
        self.guard = build_guard(config, approval_gate=self.approvals)
        return self.guard

    def _mask_for_approvers(self, body: bytes) -> bytes:
        masker = self.masker
        if masker is None:
            raise RuntimeError("masking is not available")  # approvals then show a summary only
        try:
            return bytes(masker.mask_json(body))
        except ValueError:
            return bytes(masker.mask(body))

    def install(self, gateway: Any) -> None:
        """Gateway hook: runs inside the worker's event loop once the gateway exists."""
        if self.config.insecure_passthrough:
            return
        from graphwarden.approvals import install as install_approvals

        install_approvals(gateway, self.approvals, mask=self._mask_for_approvers)

    def validate(self) -> None:
        """Build the guard once (in the parent) so that configuration errors stop `serve`
        before it listens. Raises ConfigError."""
        self.build_guard(self.config)


__all__ = ["Assembly"]
