"""Builds a worker's gateway from configuration: identity + policy guard, approvals, masking,
the audit log and the evidence hooks, wired together.

`serve` creates one `Assembly` before forking; each worker process calls `build_guard` (through
`run_gateway`'s guard factory) and then `install` (as a gateway hook), so threads, SQLite
connections and the audit writer are created inside the worker that uses them.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from graphwarden.config import GatewayConfig
from graphwarden.evidence.core import now_iso
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
        self.crons: Any = None
        self.catalogue_watcher: Any = None

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

    def build_masker(self) -> Any:
        """The masking engine from the catalogue (default or the operator's). A pattern that
        does not compile raises ConfigError naming it, so the gateway does not start."""
        from graphwarden.errors import ConfigError
        from graphwarden.masking import Masker

        path = self.config.masking.catalogue
        try:
            return Masker.from_file(path) if path else Masker.default()
        except (ValueError, OSError) as exc:
            if str(exc).startswith("GRAPHWARDEN_SIMD="):
                raise ConfigError("environment: GRAPHWARDEN_SIMD", str(exc),
                                  "set it to avx512, avx2 or sse2, or unset it to use what the CPU has") from None
            raise ConfigError("masking.catalogue", str(exc), "fix or disable the named entry in the catalogue") from None

    def install(self, gateway: Any) -> None:
        """Gateway hook: runs inside the worker's event loop once the gateway exists."""
        config = self.config
        if config.insecure_passthrough:
            return
        from graphwarden.approvals import install as install_approvals
        from graphwarden.audit import open_from_config
        from graphwarden.evidence.core import Evidence, MaskingPolicy

        if self.masker is None:
            self.masker = self.build_masker()
        if config.masking.catalogue:
            self._watch_catalogue(gateway, config.masking.catalogue, config.masking.reload_poll_s)
        policies = getattr(self.guard, "policies", None)
        if policies is not None:
            policies.on_reload.append(lambda result: self._reload_record("policy_reload", result))
        install_approvals(gateway, self.approvals, mask=self._mask_for_approvers)
        gateway.on_close.append(self.approvals.close)
        self.audit = open_from_config(config, gateway.worker)
        if self.audit is None:
            log.warning("audit.enabled is false: this gateway keeps no evidence")
            return
        audit = self.audit
        gateway.readiness_checks["audit"] = audit.readiness_problem
        gateway.on_close.append(self._close_audit)
        mc = config.masking
        policy = MaskingPolicy(
            [(r.routes, r.groups, r.requests, r.responses) for r in mc.rules],
            default_requests=mc.requests, default_responses=mc.responses,
        )
        ec = config.evidence
        self.evidence = Evidence(
            audit=AuditAdapter(audit),
            masker=self.masker,
            policy=policy,
            max_body_bytes=config.limits.max_body_bytes,
            json_buffer_bytes=mc.json_buffer_bytes,
            audit_level=ec.level,
            inject_stream_modes=ec.inject_stream_modes,
            collect_history=ec.collect_history,
            history_timeout_s=ec.history_timeout_s,
        )
        self.evidence.install(gateway)
        if ec.follow_crons and ec.collect_history and gateway.worker == 0:  # one worker records each run once
            from graphwarden.evidence.crons import CronFollower

            follower = CronFollower(self.evidence, poll_s=ec.cron_poll_s,
                                    state_file=Path(config.state.dir) / "evidence" / "cron-runs.json")
            follower.start()
            gateway.on_close.append(follower.stop)
            self.crons = follower
        self.approvals.observers.append(self._approval_observer)
        guard = self.guard
        if guard is not None and hasattr(guard, "on_refusal"):
            guard.on_refusal.append(self.evidence.note_decision)
        start: dict[str, Any] = {"event": "start", "worker": gateway.worker, "ts": now_iso(),
                                 "upstream": config.upstream.url, "chain": audit.chain,
                                 "masking_catalogue": {"file": self.masker.source, "digest": self.masker.digest}}
        if policies is not None:
            start["policy"] = {"file": str(policies.path) if policies.path else "<default>", "digest": policies.digest}
        audit.append("gateway", start)

    def _watch_catalogue(self, gateway: Any, path: str, poll_s: float) -> None:
        """Reloads the operator's catalogue on SIGHUP and when the file changes (see
        `graphwarden.masking.reload`); each reload, loaded or rejected, goes on the record."""
        from graphwarden.masking.reload import CatalogueWatcher

        watcher = CatalogueWatcher(self.masker, path, poll_s,
                                   on_result=lambda result: self._reload_record("masking_reload", result))
        watcher.start()
        gateway.on_close.append(watcher.stop)
        self.catalogue_watcher = watcher
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            # after the policy's handler (`build_guard`): SIGHUP reloads both
            previous = signal.getsignal(signal.SIGHUP)

            def on_hup(signo: int, frame: Any) -> None:
                watcher.request_reload()
                if callable(previous):
                    previous(signo, frame)

            signal.signal(signal.SIGHUP, on_hup)

    def _reload_record(self, event: str, result: dict[str, Any]) -> None:
        """A `gateway` record of a policy or masking catalogue reload (loaded or rejected)."""
        audit = self.audit
        if audit is None:
            return
        audit.append("gateway", {"event": event, "ts": now_iso(), "chain": audit.chain, **result})

    def _close_audit(self) -> None:
        """Worker shutdown: a `gateway stop` record, then the signed close checkpoint."""
        audit = self.audit
        if audit is None:
            return
        try:
            audit.append("gateway", {"event": "stop", "ts": now_iso(), "chain": audit.chain})
        except Exception:
            log.exception("could not record the gateway stop")
        audit.close()

    def _approval_observer(self, kind: str, a: Any) -> None:
        """Every approval transition becomes an `approval` audit record (comments masked)."""
        evidence = self.evidence
        if evidence is None:
            return
        last = a.events[-1] if a.events else None
        comment = last.comment if last is not None else None
        body = {
            "approval_id": a.id,
            "ts": now_iso(),
            "transition": kind.split(".", 1)[-1],
            "from": last.from_state if last is not None else None,
            "to": a.state.value,
            "actor": {"subject": last.actor} if last is not None else None,
            "comment": evidence.masked_text(comment),
            "requester": {"subject": a.requester, "groups": list(a.requester_groups)},
            "rule": a.rule,
            "fingerprint": a.fingerprint,
            "request_id": a.request_id,
            "thread_id": a.params.get("thread_id"),
            "assistant_id": a.assistant_id,
            "justification": evidence.masked_text(a.justification),
            "votes": [{"approver": v.approver, "decision": v.decision, "comment": evidence.masked_text(v.comment)}
                      for v in a.votes],
            "approvals_required": a.approvals_required,
        }
        try:
            self.audit.append("approval", body)
        except Exception:
            log.exception("approval transition could not be recorded", extra={"fields": {"approval_id": a.id}})

    def validate(self) -> None:
        """Build the guard and the masker once (in the parent) so that configuration errors
        stop `serve` before it listens. Raises ConfigError."""
        self.build_guard(self.config)
        if not self.config.insecure_passthrough:
            self.build_masker()


class AuditAdapter:
    """The audit log as the evidence hooks see it."""

    def __init__(self, log: Any) -> None:
        self.log = log
        self.strict = log.durability == "strict"
        self.append = log.append  # no extra frame per record
        self.append_dict = log.append_dict

    async def wait_durable(self, seq: int) -> None:
        await self.log.wait_durable(seq)


__all__ = ["Assembly"]
