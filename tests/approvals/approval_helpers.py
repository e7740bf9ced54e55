"""Helpers shared by the approvals tests."""
from __future__ import annotations

import http.server
import threading
import time
from typing import Any

import orjson

from graphwarden.approvals import NewApproval


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def new_request(fingerprint: str = "fp-1", **kw: object) -> NewApproval:
    base: dict[str, object] = dict(
        rule="risky-run", fingerprint=fingerprint, grant_kind="once", grant_key=None, requester="alice",
        requester_groups=("analysts",), method="POST", target="/threads/t1/runs/wait",
        operation="threads.create_run", params={"thread_id": "t1"}, assistant_id="agent",
        body_sha256="0" * 64, body_size=10, body_view={"top_level_keys": ["input"]}, justification=None,
        approver_groups=("sre",), approvals_required=1, mode="hold", expires_seconds=600.0,
        grant_seconds=1800.0,
    )
    base.update(kw)
    return NewApproval(**base)  # type: ignore[arg-type]


class Hook:
    """A webhook receiver that fails the first `fail_first` requests with 503."""

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.delay_s = delay_s
        self.received: list[tuple[float, dict[str, Any]]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                hook.received.append((time.monotonic(), orjson.loads(body)))
                time.sleep(hook.delay_s)
                status = 503 if len(hook.received) <= hook.fail_first else 200
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
