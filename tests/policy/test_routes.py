"""Route table and path normalisation (pure; no sockets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwarden.policy.routes import ROUTES, PathRejected, RouteTable, normalise_path

TABLE = RouteTable()


def _server_routes() -> list[tuple[str, str]]:
    script = Path(__file__).with_name("list_server_routes.py")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    return [tuple(x) for x in json.loads(out.stdout.strip().splitlines()[-1])]  # type: ignore[misc]


def _sample(pattern: str) -> str:
    parts = []
    for seg in pattern.split("/"):
        if seg.startswith("{"):
            parts.append("seg-" + seg.strip("{}*:").split(":")[0])
        else:
            parts.append(seg)
    return "/".join(parts)


def test_every_route_of_the_installed_server_is_classified() -> None:
    routes = _server_routes()
    assert len(routes) > 60
    unknown = []
    for method, path in routes:
        m = "GET" if method == "WS" else method
        op = TABLE.classify(m, _sample(path))
        if op.name == "unknown":
            unknown.append((method, path))
    assert unknown == []


def test_every_table_route_exists_on_the_server() -> None:
    served = {(("GET" if m == "WS" else m), p) for m, p in _server_routes()}
    # Not served by this build: the profiler (FF_PYSPY_PROFILING_ENABLED), the static UI mount
    # (listed as a Mount), the gateway's own endpoints.
    missing = [
        (r.method, r.pattern) for r in ROUTES
        if (r.method, r.pattern) not in served
        and r.resource != "gateway" and r.name not in ("meta.profile", "ui.static")
    ]
    assert missing == []


@pytest.mark.parametrize(
    ("method", "target", "name", "params"),
    [
        ("POST", "/threads", "threads.create", {}),
        ("GET", "/threads/t1", "threads.read", {"thread_id": "t1"}),
        ("GET", "/threads/search", "threads.read", {"thread_id": "search"}),  # starlette's order
        ("POST", "/threads/search", "threads.search", {}),
        ("POST", "/threads/t1/runs/stream?x=1", "threads.stream_run", {"thread_id": "t1"}),
        ("GET", "/threads/t1/runs/r1/join", "runs.join", {"thread_id": "t1", "run_id": "r1"}),
        ("POST", "/threads/t1/runs/crons", "crons.create_for_thread", {"thread_id": "t1"}),
        ("GET", "/threads/t1/runs/crons", "runs.read", {"thread_id": "t1", "run_id": "crons"}),
        ("POST", "/threads/t1/state/checkpoint", "threads.get_state", {"thread_id": "t1"}),
        ("POST", "/threads/t1/commands", "threads.command", {"thread_id": "t1"}),
        ("GET", "/thr%65ads/t%31", "threads.read", {"thread_id": "t1"}),  # decoded like uvicorn
        ("HEAD", "/info", "meta.info", {}),
        ("GET", "/a2a/as1/", "a2a.read", {"assistant_id": "as1"}),
        ("GET", "/a2a/as1/.well-known/agent.json", "a2a.agent_card", {"assistant_id": "as1"}),
        ("PUT", "/store/items", "store.put", {}),
        ("POST", "/internal/truncate", "dev.truncate", {}),
        ("GET", "/ui/bundle/x.js", "ui.static", {"path": "bundle/x.js"}),
        ("POST", "/_graphwarden/approvals/ap1/approve", "gateway.approvals.approve", {"approval_id": "ap1"}),
    ],
)
def test_classification(method: str, target: str, name: str, params: dict[str, str]) -> None:
    op = TABLE.classify(method, target)
    assert (op.name, op.params) == (name, params)


@pytest.mark.parametrize(
    "target",
    [
        "/threads/../internal/truncate", "/threads/./t1", "/ok/%2e%2e/internal/truncate", "/internal%2ftruncate",
        "/internal%2Ftruncate", "//internal/truncate", "/threads//t1", "/internal\\truncate", "/threads/%00",
        "/threads/%252e%252e", "/threads/%ff", "http://upstream/internal/truncate", "*", "/threads/t1%5c..",
        "/threads/t1#frag", "/threads/%2E",
    ],
)
def test_tricky_spellings_are_refused(target: str) -> None:
    with pytest.raises(PathRejected):
        normalise_path(target)
    assert TABLE.classify("POST", target).name == "unknown"


@pytest.mark.parametrize("target", ["/Threads/t1", "/THREADS", "/threads/", "/internal/truncate/", "/info/", "/nope"])
def test_unlisted_spellings_are_unknown(target: str) -> None:
    assert TABLE.classify("GET", target).name == "unknown"
    assert TABLE.classify("POST", target).name == "unknown"


def test_body_limits_only_where_needed() -> None:
    assert TABLE.classify("GET", "/threads/t1").body_limit_bytes == 0
    assert TABLE.classify("GET", "/info").body_limit_bytes == 0
    assert TABLE.classify("POST", "/threads/t1/runs").body_limit_bytes > 0
    assert 0 < TABLE.classify("POST", "/_graphwarden/approvals/a/deny").body_limit_bytes <= 16 * 1024


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="/.%2fFeE5cC0abthreadsruninfo\\?#", max_size=40))
def test_classified_paths_have_a_single_meaning(target: str) -> None:
    """Anything classified as a known route is free of the ambiguous spellings, and the route's
    parameters are exactly the decoded segments the upstream would see."""
    op = TABLE.classify("GET", "/" + target)
    if op.name == "unknown":
        return
    segments, _ = normalise_path("/" + target)
    assert ".." not in segments and "." not in segments
    assert all(s for s in segments[:-1])
    for value in op.params.values():
        assert "%" not in value and "\\" not in value
