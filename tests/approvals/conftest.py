from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from approval_helpers import FakeClock  # noqa: E402
from graphwarden.approvals import ApprovalStore  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "approvals.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> ApprovalStore:
    return ApprovalStore(db_path, clock=clock)
