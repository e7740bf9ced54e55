#!/usr/bin/env python3
"""Two builds of the native module side by side: the masking rates of `benchmarks/masking_bench.py`'s
texts (prose, digit-heavy, PII-dense; 4 MiB each; and a JSON request carrying a base64 image,
through `mask()`) and the p50 of a 1 KiB `mask()` and of a
256-byte streamed write, each build in its own process, in
interleaved rounds, so that a change to the engine is judged by ratios taken minutes apart on
the same machine rather than by absolute figures from different hours.

Each build is a shared object (`target/release/libgraphwarden_native.so`, built with
`cargo build --release --lib --features pyo3/extension-module`); it is loaded as
`graphwarden._native` from a copy of this checkout's Python package, so the checkout is not
touched.

With `--simd avx2` (or `sse2`), both builds run with `GRAPHWARDEN_SIMD` set, capping the vector
instructions their passes use, so that a change to a narrower level's pass is measured on a
machine that has wider ones (builds from before the variable ignore it: check the "passes" line).

Usage: taskset -c 1 python3 benchmarks/masking_ab.py A.so B.so [--rounds 3] [--seconds 2] [--simd LEVEL]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "graphwarden"

CHILD = r"""
import json, sys, time
from graphwarden.masking import Masker
from graphwarden.masking.cli import corpus, image_request, prose
seconds = float(sys.argv[1])
m = Masker.default()
size = 4 << 20
out = {}
for name, data in (("prose", prose(size)), ("digit-heavy", corpus(size, dense=False)),
                   ("PII-dense", corpus(size, dense=True)), ("base64 JSON", image_request(size))):
    m.mask(data)
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        m.mask(data)
        best = min(best, time.perf_counter() - t)
    out[name] = len(data) / best / 1e9
def p50_us(fn, n=20000):
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    samples.sort()
    return samples[n // 2] / 1000
kib = corpus(size, dense=True)[:1024]
out["1 KiB us"] = p50_us(lambda: m.mask(kib))
stream, chunk = m.stream(), corpus(size, dense=False)[:256]
out["write us"] = p50_us(lambda: stream.feed(chunk))
print(json.dumps(out))
try:
    print("passes:", m.simd(), file=sys.stderr)
except AttributeError:  # a build from before `simd()`
    print("(this build does not say which vector instructions it uses)", file=sys.stderr)
"""


def overlay(so: Path, into: Path) -> Path:
    """A copy of the Python package with `so` as its native module; the directory to put on
    PYTHONPATH."""
    pkg = into / "graphwarden"
    shutil.copytree(PACKAGE, pkg, ignore=shutil.ignore_patterns("_native*.so", "__pycache__"))
    shutil.copy(so, pkg / "_native.abi3.so")
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--simd", choices=("avx512", "avx2", "sse2"), help="cap both builds' passes (GRAPHWARDEN_SIMD)")
    args = ap.parse_args()
    for so in (args.a, args.b):
        if not so.is_file():
            print(f"error: {so}: no such file", file=sys.stderr)
            return 2
    rates: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        so_of = {"A": args.a, "B": args.b}
        paths = {k: overlay(so, Path(tmp) / k) for k, so in so_of.items()}
        for r in range(args.rounds):
            for k in ("A", "B"):
                env = {"PYTHONPATH": str(paths[k]), "PATH": "/usr/bin:/bin"}
                if args.simd:
                    env["GRAPHWARDEN_SIMD"] = args.simd
                run = subprocess.run([sys.executable, "-c", CHILD, str(args.seconds)], capture_output=True,
                                     text=True, env=env)
                if run.returncode != 0:
                    print(f"error: build {k} failed:\n{run.stderr}", file=sys.stderr)
                    return 1
                rates[k].append(json.loads(run.stdout))
                if r == 0:
                    print(f"build {k} ({so_of[k]}): {run.stderr.strip()}", flush=True)
                row = "  ".join(f"{n} {v:6.3f}" for n, v in rates[k][-1].items())
                print(f"round {r + 1} {k}: {row} (GB/s, or us where named)", flush=True)
    print("B's speed over A's, per round, median (A median -> B median, GB/s or us):")
    for name in rates["A"][0]:
        # > 1 when B is faster: a rate's B / A, a time's A / B
        ratios = [(b[name] / a[name]) if "us" not in name else (a[name] / b[name])
                  for a, b in zip(rates["A"], rates["B"])]
        a_med = statistics.median(x[name] for x in rates["A"])
        b_med = statistics.median(x[name] for x in rates["B"])
        print(f"  {name:<12} {statistics.median(ratios):.3f}x (range {min(ratios):.3f}-{max(ratios):.3f}; "
              f"{a_med:.3f} -> {b_med:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
