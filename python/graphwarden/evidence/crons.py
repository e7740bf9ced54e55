"""Runs started by the server's cron scheduler, on the record.

A cron's runs never pass through the gateway: the server's scheduler creates them. For every
cron bound to a thread, the gateway (worker 0 only, so that each run is recorded once) polls
the thread's runs every `cron_poll_s`. Each run that carries the cron's id
(`kwargs.config.configurable.cron_id`, set by the server) and has ended gets, once:

- a `run` record: `source = "cron"`, the cron id, the run's status and timestamps;
- its steps from the thread's history (`step` records, `source = "history"`), as for runs
  without a stream; or a `gap` record when the history cannot be read.

Which runs were recorded is kept in `<state dir>/evidence/cron-runs.json`, so a restart neither
records a run twice nor misses the runs that ended while the gateway was down (as long as the
server still lists them: the newest `RUNS_PER_POLL` of the thread).

Stateless crons (no thread) give each run a thread of its own. A stateless cron created through
the gateway keeps those threads and carries a tag with the client's wish (`CRON_TAG`, see
evidence/core.py); each poll finds the tagged threads with `/threads/search`, records each one's
run once it has ended (same records), and deletes the thread when the client had not asked to
keep it. Stateless crons created around the gateway carry no tag: their threads are deleted by
the server as their runs end, and are not followed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from graphwarden.evidence.core import CRON_TAG, Evidence, now_iso
from graphwarden.evidence.upstream import upstream_json
from graphwarden.ops import get_logger


log = get_logger("evidence.crons")

#: Run statuses after which a run changes no more.
ENDED = frozenset({"success", "error", "interrupted", "timeout"})
#: Runs asked for per thread and poll (newest first).
RUNS_PER_POLL = 100
#: Recorded run ids (and "thread:<id>" for the stateless crons' threads that are done) kept in
#: the state file (oldest forgotten first).
MAX_REMEMBERED = 100_000


class CronFollower:
    """Polls the threads of the server's crons and records the runs the crons started."""

    def __init__(self, evidence: Evidence, *, poll_s: float, state_file: Path) -> None:
        self.evidence = evidence
        self.poll_s = poll_s
        self.state_file = state_file
        self._seen: dict[str, None] = dict.fromkeys(self._load())
        self._task: asyncio.Task[None] | None = None
        self.polls = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _loop(self) -> None:
        failing: str | None = None
        while True:
            try:
                await self.poll()
                if failing is not None:
                    log.info("following cron runs again")
                    failing = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the upstream is down, say: try again next time
                # Once per outage, not every poll (a gateway started before its upstream).
                if str(exc) != failing:
                    log.warning("could not follow cron runs; retrying every poll",
                                extra={"fields": {"error": str(exc), "poll_s": self.poll_s}})
                failing = str(exc)
            await asyncio.sleep(self.poll_s)

    # -- one poll -------------------------------------------------------------------------------
    async def poll(self) -> int:
        """Record the cron runs that ended since the last poll; returns how many."""
        self.polls += 1
        crons = await self._crons()
        recorded = 0
        for thread_id, cron_ids in crons.items():
            recorded += await self._follow_thread(thread_id, cron_ids)
        for wish in ("delete", "keep"):
            recorded += await self._follow_stateless(wish)
        if recorded:
            self._save()
        return recorded

    async def _runs(self, thread_id: str) -> list[dict[str, Any]] | None:
        """The thread's runs, oldest first (None when the thread is gone)."""
        gw = self.evidence.gateway
        assert gw is not None
        status, runs = await upstream_json(gw, "GET", f"/threads/{thread_id}/runs?limit={RUNS_PER_POLL}",
                                           timeout_s=30.0)
        if status == 404:
            return None
        if status != 200 or not isinstance(runs, list):
            raise RuntimeError(f"listing the runs of thread {thread_id} answered {status}")
        return [r for r in reversed(runs) if isinstance(r, dict)]  # the trail keeps the runs' order

    async def _follow_thread(self, thread_id: str, cron_ids: set[str]) -> int:
        runs = await self._runs(thread_id)
        recorded = 0
        for run in runs or ():  # None: the thread went, its cron with it
            run_id = str(run.get("run_id"))
            cron_id = _cron_id(run)
            if cron_id is None or cron_id not in cron_ids or run_id in self._seen:
                continue
            if run.get("status") not in ENDED:
                continue
            await self._record(thread_id, run_id, cron_id, run)
            self._seen[run_id] = None
            recorded += 1
        return recorded

    async def _follow_stateless(self, wish: str) -> int:
        """The threads of the stateless crons tagged with `wish`: each one's run, once ended."""
        gw = self.evidence.gateway
        assert gw is not None
        recorded = 0
        offset = 0
        while True:
            status, page = await upstream_json(gw, "POST", "/threads/search",
                                               {"metadata": {CRON_TAG: wish}, "limit": 1000, "offset": offset},
                                               timeout_s=30.0)
            if status != 200 or not isinstance(page, list):
                raise RuntimeError(f"searching the threads of stateless crons answered {status}")
            for thread in page:
                thread_id = str(thread.get("thread_id") or "") if isinstance(thread, dict) else ""
                if not thread_id or "thread:" + thread_id in self._seen:
                    continue
                runs = await self._runs(thread_id)
                if not runs or any(r.get("status") not in ENDED for r in runs):
                    continue  # not started or not ended yet: next poll
                for run in runs:
                    run_id = str(run.get("run_id"))
                    if run_id not in self._seen:
                        await self._record(thread_id, run_id, _cron_id(run), run)
                        self._seen[run_id] = None
                        recorded += 1
                self._seen["thread:" + thread_id] = None
                if wish == "delete":
                    await self.evidence.delete_thread(None, thread_id)
            if len(page) < 1000:
                return recorded
            offset += len(page)

    async def _crons(self) -> dict[str, set[str]]:
        """Thread id -> ids of the crons on it, for every cron the server has."""
        gw = self.evidence.gateway
        assert gw is not None
        out: dict[str, set[str]] = {}
        offset = 0
        while True:
            status, page = await upstream_json(gw, "POST", "/runs/crons/search", {"limit": 1000, "offset": offset},
                                               timeout_s=30.0)
            if status == 404:  # a server without crons (FF_CRONS_ENABLED off): nothing to follow
                return out
            if status != 200 or not isinstance(page, list):
                raise RuntimeError(f"searching crons answered {status}")
            for cron in page:
                if isinstance(cron, dict) and cron.get("thread_id") and cron.get("cron_id"):
                    out.setdefault(str(cron["thread_id"]), set()).add(str(cron["cron_id"]))
            if len(page) < 1000:
                return out
            offset += len(page)

    async def _record(self, thread_id: str, run_id: str, cron_id: str | None, run: dict[str, Any]) -> None:
        ev = self.evidence
        ev.audit.append("run", {
            "request_id": None, "thread_id": thread_id, "run_id": run_id, "ts": now_iso(),
            "source": "cron", "cron_id": cron_id, "assistant_id": run.get("assistant_id"),
            "run_status": run.get("status"), "created_at": run.get("created_at"),
            "updated_at": run.get("updated_at"),
        })
        await ev.collect_steps(None, thread_id, run_id, join=False)

    # -- state ----------------------------------------------------------------------------------
    def _load(self) -> Iterable[str]:
        try:
            data = orjson.loads(self.state_file.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, orjson.JSONDecodeError) as exc:
            # Not fatal: at worst a run already on record is recorded again (same run id).
            log.warning("cron run state unreadable; starting afresh",
                        extra={"fields": {"file": str(self.state_file), "error": str(exc)}})
            return []
        runs = data.get("recorded_runs") if isinstance(data, dict) else None
        return [str(r) for r in runs] if isinstance(runs, list) else []

    def _save(self) -> None:
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.pop(next(iter(self._seen)))
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"recorded_runs": list(self._seen)}))
        os.replace(tmp, self.state_file)


def _cron_id(run: dict[str, Any]) -> str | None:
    kwargs = run.get("kwargs")
    config = kwargs.get("config") if isinstance(kwargs, dict) else None
    configurable = config.get("configurable") if isinstance(config, dict) else None
    value = configurable.get("cron_id") if isinstance(configurable, dict) else None
    return str(value) if value else None


__all__ = ["CronFollower"]
