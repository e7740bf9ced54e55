"""How long `graphwarden replay` takes on a large trail (model build + rendering), in one run.

    .venv/bin/python benchmarks/replay_build.py [RUNS]

Builds a synthetic trail of RUNS streamed runs (request, run, 4 steps, response = 7 records
each, spread over 4 chains), then times: loading via JsonlSource, building the replay of one
run, and rendering it as text/json/html. Replay holds the whole trail in memory; the figures
show what that costs per record.
"""

from __future__ import annotations

import sys
import tempfile
import time
import resource
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "replay"))

from trail import Trail  # noqa: E402

from graphwarden.replay import JsonlSource, QueryKind, build_replay, select_records  # noqa: E402
from graphwarden.replay.render import render  # noqa: E402
from graphwarden.replay.source import write_jsonl  # noqa: E402


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    t = Trail()
    for i in range(runs):
        chain = f"gw-{i % 4}"
        rid, thread, run = f"req-{i}", f"T{i}", f"R{i}"
        t.request(rid, f"/threads/{thread}/runs/stream", thread=thread, chain=chain, input_={"text": f"hello {i}"})
        t.add("run", {"request_id": rid, "thread_id": thread, "run_id": run, "assistant_id": "agent"}, chain=chain)
        for n, node in enumerate(("greet", "tool", "review", "finish"), 1):
            t.step(rid, thread, run, n, node, {"messages": [f"step {n} of run {i}"]}, chain=chain, after_ms=2)
        t.response(rid, thread=thread, run=run, chain=chain)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trail.jsonl"
        write_jsonl(path, t.records)
        size = path.stat().st_size
        t0 = time.perf_counter()
        records = list(JsonlSource(path, t.intact()).records())
        t1 = time.perf_counter()
        replay = build_replay(records, t.intact(), QueryKind.RUN, f"R{runs // 2}")
        t2 = time.perf_counter()
        source = JsonlSource(path, t.intact())
        selected = select_records(source.records, QueryKind.RUN, f"R{runs // 2}")
        two_pass = build_replay(selected, t.intact(), QueryKind.RUN, f"R{runs // 2}")
        t3 = time.perf_counter()
        assert [s.node for s in two_pass.runs[0].steps] == [s.node for s in replay.runs[0].steps]
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        timings = {}
        for fmt in ("text", "json", "html", "text"):
            s = time.perf_counter()
            render(replay, fmt)
            timings[fmt] = time.perf_counter() - s
    n = len(t.records)
    print(f"trail: {n} records, {size / 1e6:.1f} MB JSON lines, {runs} runs")
    print(f"load (JsonlSource):   {t1 - t0:7.3f} s  ({(t1 - t0) / n * 1e6:.2f} us/record)")
    print(f"build_replay (1 run): {t2 - t1:7.3f} s  ({(t2 - t1) / n * 1e6:.2f} us/record)")
    print(f"CLI path, two passes (select_records + build, incl. reading twice): {t3 - t2:7.3f} s, kept {len(selected)} records")
    print(f"peak RSS of the process (includes building the synthetic trail): {peak_rss / 1e6:.0f} MB")
    print("render: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in timings.items()))
    assert [s.node for s in replay.runs[0].steps] == ["greet", "tool", "review", "finish"]


if __name__ == "__main__":
    main()
