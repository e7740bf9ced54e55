#!/usr/bin/env python3
"""The native SSE splitter alone: µs of CPU per MiB of events, beside another build's.

guardrails_bench.py measures the SSE target end to end (gateway, h11, sockets); this isolates
the part the masking of streams adds: `Masker.native_sse_rewriter` splitting the proxy
benchmark's event stream (LangGraph-shaped `values` events, LF line ends) into events, routing
the few the gateway reads and masking the rest's JSON natively. The stream is fed in 64 KiB
chunks, as the upstream connection hands it over, and the output is collected as the gateway
collects it. Best of several runs.

`--other FILE.so`: a `graphwarden._native` build to compare with (for example one built from an
older revision with `cargo build --release --lib --features pyo3/extension-module`). The two run
in alternating subprocesses, so that slow drifts of this shared machine hit both alike; the
ratio is what counts.

Usage: taskset -c 1 python3 benchmarks/sse_splitter_bench.py [--seconds 3] [--rounds 3] [--other OLD.so]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROUTED = [b"metadata", b"tasks", b"error", b"messages", b"messages/partial", b"events"]


def measure(seconds: float) -> float:
    """µs per MiB, best run, for the graphwarden importable here."""
    sys.path.insert(0, str(HERE))
    from proxy_bench import sse_payload

    from graphwarden.evidence.streams import native_splitter
    from graphwarden.masking import Masker

    masker = Masker.default()
    payload = sse_payload(8 << 20)
    chunks = [payload[i:i + 65536] for i in range(0, len(payload), 65536)]

    def run() -> int:
        sp = native_splitter(ROUTED, masker)
        n = 0
        for c in chunks:
            for seg in sp.feed(c):
                n += len(seg) if isinstance(seg, bytes) else len(seg[1])
        return n + len(sp.finish())

    if run() != len(payload):  # nothing in this stream is masked: every byte passes
        raise SystemExit("the splitter changed a stream it should pass unchanged")
    best = float("inf")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best * 1e6 / (len(payload) / (1 << 20))


def in_subprocess(so: Path | None, seconds: float) -> float:
    """`measure` in a fresh interpreter; with `so`, against a copy of the package using it."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        if so is not None:
            pkg = Path(tmp) / "graphwarden"
            import graphwarden

            shutil.copytree(Path(graphwarden.__file__).parent, pkg,
                            ignore=shutil.ignore_patterns("_native*.so", "__pycache__"))
            shutil.copy(so, pkg / "_native.abi3.so")
            env["PYTHONPATH"] = tmp + os.pathsep + env.get("PYTHONPATH", "")
        out = subprocess.run([sys.executable, __file__, "--child", str(seconds)], env=env, cwd=tmp,
                             capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(measure(float(sys.argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--other", type=Path, help="another build of graphwarden/_native.abi3.so")
    args = ap.parse_args()
    if args.other is None:
        for _ in range(args.rounds):
            print(f"this build {measure(args.seconds):7.0f} us/MiB")
        return 0
    ratios = []
    for r in range(args.rounds):
        this = in_subprocess(None, args.seconds)
        other = in_subprocess(args.other, args.seconds)
        ratios.append(this / other)
        print(f"round {r + 1}: this build {this:7.0f} us/MiB   other {other:7.0f} us/MiB   this/other {this / other:.2f}")
    ratios.sort()
    print(f"median this/other (CPU per MiB; lower is better): {ratios[len(ratios) // 2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
