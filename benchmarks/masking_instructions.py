#!/usr/bin/env python3
"""Instructions per masking call, counted by valgrind (callgrind), for this tree and, side by side
in the same run, for another git revision.

masking_bench.py measures GB/s and µs, the units the targets are written in; on this shared
2-core machine the same build measures 1.3 GB/s in one run and 3.8 GB/s in the next. The number
of instructions a call executes does not depend on the neighbours. It ignores cache and memory
effects, so it is a companion to the timed benchmarks, not a replacement: use it to tell whether
a change made the engine do less work.

The cases are the cargo bench's (`benches/native.rs`, shipped catalogue, its own corpus):
  clean    mask() of 2 MiB without PII (ids, dates, amounts, UUIDs: a quarter of the bytes digits)
  dense    mask() of 2 MiB with one catalogue value per ~1 KiB
  prose    mask() of 2 MiB of chat prose without PII (few digits; the output copy included)
  kib      mask() of the first 1 KiB of dense
  json     mask_json() of a 1 KiB JSON document (one string of clean text)
  stream   one 256-byte write into a stream masker (clean text, in order)

Each case runs `GW_BENCH_LOOP=<case>` for 2 and for 4 rounds under callgrind; the difference
over 2 rounds leaves out start-up and the first call's warm-up (lazy DFA states, scratch).
With `--base REV`, REV is checked out in a temporary git worktree, built with the same bench
source (benches/native.rs from this tree) and counted the same way.

Usage: python3 benchmarks/masking_instructions.py [--base REV] [--only clean,kib]
(about a minute per case and build; needs valgrind and cargo)
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {"clean": 1, "dense": 1, "prose": 1, "kib": 1000, "json": 1000, "stream": 1000}  # calls per round
SIZES = {"clean": 2 << 20, "dense": 2 << 20, "prose": 2 << 20, "kib": 1024, "json": 1024, "stream": 256}


def build(tree: Path, target: Path) -> Path:
    """Builds the native bench of `tree` into `target`; returns the binary."""
    env = {**os.environ, "CARGO_TARGET_DIR": str(target)}
    subprocess.run(["cargo", "bench", "--bench", "native", "--no-run", "--quiet"], cwd=tree, env=env, check=True)
    bins = [p for p in glob.glob(str(target / "release" / "deps" / "native-*")) if not p.endswith(".d")]
    return Path(max(bins, key=os.path.getmtime))


def count(binary: Path, case: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg.out", str(binary)],
            env={**os.environ, "GW_BENCH_LOOP": case, "GW_BENCH_ROUNDS": str(rounds)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True, cwd=ROOT,
        ).stderr
    m = re.search(r"Collected : (\d+)", out)
    if not m:
        raise SystemExit(f"callgrind printed no total:\n{out[-2000:]}")
    return int(m.group(1))


def per_call(binary: Path, case: str) -> float:
    return (count(binary, case, 4) - count(binary, case, 2)) / (2 * CASES[case])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="a git revision to count beside this tree")
    ap.add_argument("--only", default=",".join(CASES))
    args = ap.parse_args()
    cases = [c for c in args.only.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not shutil.which("valgrind"):
        raise SystemExit(f"unknown cases {unknown}" if unknown else "valgrind is not installed")
    work = Path(tempfile.mkdtemp(prefix="gw-maskins-"))
    tree = work / "base"  # kept until the end: the bench reads that revision's catalogue from it
    try:
        builds = {"this tree": build(ROOT, work / "target-this")}
        if args.base:
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), args.base], cwd=ROOT, check=True)
            shutil.copy(ROOT / "benches" / "native.rs", tree / "benches" / "native.rs")
            builds[args.base] = build(tree, work / "target-base")
        names = list(builds)
        print("instructions per call (per byte)" + "".join(f" | {n:>22}" for n in names)
              + (" | this / base" if args.base else ""))
        for case in cases:
            got = [per_call(builds[n], case) for n in names]
            cells = "".join(f" | {g:>12,.0f} ({g / SIZES[case]:5.1f})" for g in got)
            ratio = f" | {got[0] / got[1]:11.2f}" if args.base else ""
            print(f"  {case:<31}{cells}{ratio}")
    finally:
        if tree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
