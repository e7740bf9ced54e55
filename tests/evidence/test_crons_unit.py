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
