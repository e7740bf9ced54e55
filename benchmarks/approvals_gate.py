"""Cost of the approval gate on the request path, side by side in one run.

    .venv/bin/python benchmarks/approvals_gate.py [--n 2000]

Each case awaits `ApprovalService.check` (SQLite WAL store in a temp dir, store calls in the
service's thread pool) sequentially on one uvloop loop; the baseline is the passthrough guard's
`authorize`. Prints microseconds per call, calls per second and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop

from graphwarden.approvals import ApprovalService, ApprovalStore
from graphwarden.guard import AllowAllGuard, ApprovalNeeded, Operation, Principal, RequestInfo

ALICE = Principal("alice", ("analysts",))
OP = Operation("threads.create_run", "runs", "create", {"thread_id": "t1"})
INFO = RequestInfo("POST", "/threads/t1/runs/wait", (), "127.0.0.1", "req")


def body(i: int) -> bytes:
    return orjson.dumps({"assistant_id": "agent", "input": {"text": f"request {i}", "n": i}})


#: About 256 KiB of nested JSON (a run with a long conversation in its input).
BIG = {"assistant_id": "agent", "input": {"messages": [
    {"role": "user", "content": "x" * 200, "n": k, "tags": ["a", "b"], "score": 0.5} for k in range(1000)]}}


def big_body(i: int) -> bytes:
    return orjson.dumps({**BIG, "n": i})


async def timed(n: int, call: Callable[[int], Awaitable[object]]) -> float:
    for i in range(min(50, n)):  # warm-up
        await call(-1 - i)
    t0 = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - t0) / n


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        service = ApprovalService(ApprovalStore(Path(tmp) / "a.sqlite3"))
        guard = AllowAllGuard()
        async_spec = ApprovalNeeded("r-async", {"approver_groups": ["sre"], "mode": "async"})
        grant_spec = ApprovalNeeded("r-grant", {"approver_groups": ["sre"], "mode": "async", "grant": "window",
                                                "grant_seconds": 3600})
        auto_spec = ApprovalNeeded("r-auto", {"approver_groups": ["sre"], "mode": "async",
                                              "auto_approve": {"assistants": ["agent"]}})
        first = await service.check(INFO, ALICE, OP, body(0), grant_spec)
        await service.decide(str(first.extra["approval_id"]), "bob", ["sre"], "approve", None)  # type: ignore[union-attr]
        fixed = body(10**9)
        await service.check(INFO, ALICE, OP, fixed, async_spec)

        cases: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
            ("baseline: passthrough guard", lambda i: guard.authorize(INFO, OP, None)),
            ("new request -> pending, 202", lambda i: service.check(INFO, ALICE, OP, body(i), async_spec)),
            ("re-send while pending -> 202", lambda i: service.check(INFO, ALICE, OP, fixed, async_spec)),
            ("covered by window grant -> admit", lambda i: service.check(INFO, ALICE, OP, body(i), grant_spec)),
            ("auto-approved -> admit", lambda i: service.check(INFO, ALICE, OP, body(i + 10**6), auto_spec)),
            (f"new request, {len(big_body(0)) // 1024} KiB body -> 202",
             lambda i: service.check(INFO, ALICE, OP, big_body(i), async_spec)),
        ]
        print(f"approval gate, n={n} sequential calls per case, {platform.processor() or platform.machine()}, "
              f"python {platform.python_version()}")
        base = 0.0
        for name, call in cases:
            per = await timed(n, call)
            base = base or per
            print(f"  {name:<36} {per * 1e6:9.1f} us/call {1 / per:10.0f} calls/s  x{per / base:8.1f}")
        service.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    uvloop.run(main(args.n))
