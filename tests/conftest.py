"""Shared fixtures: a loop thread, a fake upstream, and a real `langgraph dev` server started
from tests/upstream (the project's deterministic graph)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.fake_upstream import FakeUpstream  # noqa: E402
from support.harness import LoopThread  # noqa: E402

UPSTREAM_PROJECT = Path(__file__).parent / "upstream"


from support.net import free_port  # noqa: E402  (re-exported for older tests)


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture(scope="session")
def fake_upstream(loop_thread: LoopThread) -> Iterator[FakeUpstream]:
    up = FakeUpstream()
    loop_thread.run(up.start())
    yield up
    loop_thread.loop.call_soon_threadsafe(up.close)


def _wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/ok", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"langgraph dev not ready after {timeout_s}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def langgraph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real LangGraph Agent Server (`langgraph dev`, in-memory runtime, offline)."""
    exe = shutil.which("langgraph")
    if exe is None:
        pytest.fail("langgraph CLI not installed: pip install 'langgraph-cli[inmem]' (see .ci/run)")
    workdir = tmp_path_factory.mktemp("lg")
    project = workdir / "project"
    shutil.copytree(UPSTREAM_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", ".langgraph_api"))
    port = free_port()
    log = workdir / "langgraph.log"
    env = dict(os.environ, LANGGRAPH_CLI_NO_ANALYTICS="1", LANGSMITH_TRACING="false")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1", "--port", str(port)],
            cwd=project, stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ok(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
