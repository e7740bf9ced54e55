"""CronFollower's memory of recorded runs (the end-to-end test drives it against langgraph dev)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphwarden.evidence import crons
from graphwarden.evidence.crons import CronFollower, _cron_id


def _follower(path: Path) -> CronFollower:
    return CronFollower(None, poll_s=1.0, state_file=path)  # type: ignore[arg-type]


def test_recorded_runs_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "evidence" / "cron-runs.json"
    first = _follower(state)
    first._seen.update(dict.fromkeys(["r1", "r2"]))
    first._save()
    assert set(_follower(state)._seen) == {"r1", "r2"}


def test_memory_is_bounded_oldest_first(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(crons, "MAX_REMEMBERED", 3)
    f = _follower(tmp_path / "s.json")
    f._seen.update(dict.fromkeys(["a", "b", "c", "d", "e"]))
    f._save()
    assert list(_follower(tmp_path / "s.json")._seen) == ["c", "d", "e"]


def test_an_unreadable_state_file_starts_afresh(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    state.write_bytes(b"{not json")
    assert _follower(state)._seen == {}
    state.write_bytes(b'["a list, not the object"]')
    assert _follower(state)._seen == {}


def test_cron_id_comes_from_the_runs_configurable() -> None:
    assert _cron_id({"kwargs": {"config": {"configurable": {"cron_id": "c-1"}}}}) == "c-1"
    assert _cron_id({"kwargs": {"config": {"configurable": {}}}}) is None
    assert _cron_id({"kwargs": None}) is None
    assert _cron_id({}) is None


def test_an_outage_is_logged_once_and_the_recovery_too(tmp_path: Path, caplog: Any) -> None:
    import asyncio
    import logging

    f = CronFollower(None, poll_s=0.001, state_file=tmp_path / "s.json")  # type: ignore[arg-type]
    outcomes = [RuntimeError("upstream down")] * 5 + [None] * 3
    calls = 0

    async def poll() -> int:
        nonlocal calls
        calls += 1
        out = outcomes[min(calls, len(outcomes)) - 1]
        if out is not None:
            raise out
        return 0

    f.poll = poll  # type: ignore[method-assign]

    async def run() -> None:
        f.start()
        while calls < len(outcomes):
            await asyncio.sleep(0.001)
        f.stop()

    with caplog.at_level(logging.INFO, logger="graphwarden"):
        asyncio.run(run())
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("could not follow cron runs; retrying every poll") == 1
    assert messages.count("following cron runs again") == 1
