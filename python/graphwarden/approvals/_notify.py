"""Notifications on new approval requests and on decisions: a generic JSON webhook and a
Slack-compatible incoming webhook (`{"text": ...}`).

Delivery runs in background tasks (urllib in a small thread pool, each attempt bounded by a
timeout, retried with exponential backoff). The approval is committed to the store before any
notification is attempted, so a slow or dead webhook never blocks a request nor loses an approval;
it only costs a log line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from graphwarden.approvals._store import Approval
from graphwarden.ops import get_logger

log = get_logger("approvals.notify")


@dataclass(frozen=True, slots=True)
class NotifySettings:
    webhook_urls: tuple[str, ...] = ()
    slack_webhook_url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    public_base_url: str | None = None


def slack_text(kind: str, a: Approval, link: str) -> str:
    what = f"{a.operation} ({a.method} {a.target.partition('?')[0]})"
    if a.assistant_id:
        what += f" on assistant {a.assistant_id}"
    if kind == "approval.requested":
        need = f"{a.approvals_required} approval{'s' if a.approvals_required > 1 else ''}"
        why = f"\nJustification: {a.justification}" if a.justification else ""
        return (f":hourglass: Approval {a.id} needed: {a.requester} wants to run {what} under rule "
                f"{a.rule}. Needs {need} from {', '.join(a.approver_groups)}.{why}\n{link}")
    verb = {"approval.approved": ":white_check_mark: approved", "approval.denied": ":no_entry: denied",
            "approval.expired": ":alarm_clock: expired"}.get(kind, kind)
    last = a.votes[-1] if a.votes else None
    by = f" by {last.approver}" + (f": {last.comment}" if last.comment else "") if last and kind != "approval.expired" else ""
    return f"Approval {a.id} for {a.requester}'s {what} {verb}{by}.\n{link}"


class Notifier:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: Counters for tests and metrics: delivered / failed (after all retries) / attempts.
        self.delivered = 0
        self.failed = 0
        self.attempts = 0

    @property
    def enabled(self) -> bool:
        return bool(self.settings.webhook_urls or self.settings.slack_webhook_url)

    def link(self, a: Approval) -> str:
        path = f"/_graphwarden/approvals/{a.id}"
        base = self.settings.public_base_url
        return base.rstrip("/") + path if base else path

    def notify(self, kind: str, a: Approval) -> None:
        """Schedule delivery of `kind` ("approval.requested", ".approved", ".denied", ".expired")."""
        if not self.enabled:
            return
        link = self.link(a)
        payload = orjson.dumps({"type": kind, "approval": a.to_json(with_history=False), "url": link})
        targets: list[tuple[str, bytes]] = [(u, payload) for u in self.settings.webhook_urls]
        if self.settings.slack_webhook_url:
            targets.append((self.settings.slack_webhook_url, orjson.dumps({"text": slack_text(kind, a, link)})))
        loop = asyncio.get_running_loop()
        for url, body in targets:
            task = loop.create_task(self._deliver(url, body, kind, a.id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, body: bytes, kind: str, approval_id: str) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="gw-notify")
        problem = ""
        for attempt in range(s.retries + 1):
            if attempt:
                await asyncio.sleep(s.backoff_s * 2 ** (attempt - 1))
            self.attempts += 1
            try:
                problem = await loop.run_in_executor(self._pool, _post, url, body, s.timeout_s)
            except Exception as exc:  # noqa: BLE001 - a webhook must never break the gateway
                problem = f"{type(exc).__name__}: {exc}"
            if not problem:
                self.delivered += 1
                return
        self.failed += 1
        log.warning(
            "approval notification failed",
            extra={"fields": {"url": _redact(url), "kind": kind, "approval_id": approval_id,
                              "attempts": s.retries + 1, "problem": problem}},
        )

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for notifications in flight (shutdown, tests)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _post(url: str, body: bytes, timeout_s: float) -> str:
    """One attempt; returns "" on a 2xx answer, else what went wrong."""
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"content-type": "application/json", "user-agent": "graphwarden"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - configured URL
            resp.read(65536)
            return "" if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _redact(url: str) -> str:
    """Slack webhook URLs carry their secret in the path: log scheme and host only."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.partition('/')[0]}/..."


def settings_from(webhook_urls: Sequence[str], slack: str | None, timeout_s: float, retries: int,
                  backoff_s: float, base: str | None) -> NotifySettings:
    return NotifySettings(tuple(webhook_urls), slack, timeout_s, retries, backoff_s, base)


__all__ = ["NotifySettings", "Notifier", "slack_text"]
