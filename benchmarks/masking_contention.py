#!/usr/bin/env python3
"""PII-dense masking under memory traffic from another core, side by side in one run.

`masking_bench.py` measures PII-dense text as one 4 MiB call. That is the only one of its
headline figures whose call writes a new text as long as its input: besides reading the 4 MiB
(the passes, the windows the exact regexes search, the rewrite), each call writes 4 MiB of
output, and a store to a line the cache does not hold first fetches that line from memory.
Input and output together are half of the 16 MiB L3 cache of the AMD EPYC the benchmarks run
on, which the machine's other tenants share; when their traffic takes it, the call waits on
memory, while Python's `re`, some 500 times slower, does not notice. The ratio to `re` then
falls, and only on PII-dense (docs/MASKING.md, "Memory traffic and the 4 MiB PII-dense call").

This script shows it on demand. Each round masks, in turn: one 512 KiB cut of the PII-dense
text with Python `re` (`masking_bench.py`'s re-each, the test oracle), the same cut with
graphwarden (three calls, the fastest kept), and the whole 4 MiB with graphwarden. The rounds
go over the eight cuts twice, first with the other cores idle, then while a second process
copies two 32 MiB buffers into each other on another core (the memory traffic of a busy
neighbour). Reported per phase: each engine's rate (the fastest call of each text, as
`masking_bench.py` takes it) and graphwarden's ratio to `re` on the 4 MiB text and on the cuts.

Usage: taskset -c 1 python3 benchmarks/masking_contention.py [--passes 2] [--no-load]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from masking_bench import ReEach  # noqa: E402

from graphwarden.masking import Masker  # noqa: E402
from graphwarden.masking.cli import corpus  # noqa: E402

CUT = 512 << 10

LOAD = """
import sys
a, b = bytearray(32 << 20), bytearray(b"x" * (32 << 20))
print("ready", flush=True)
while True:
    a[:] = b
    b[:] = a
"""


def phase(name: str, passes: int, m: Masker, re_each: ReEach, text: bytes) -> None:
    cuts = [text[i:i + CUT] for i in range(0, len(text), CUT)]
    best_re = [float("inf")] * len(cuts)
    best_cut = [float("inf")] * len(cuts)
    best_whole = float("inf")
    for _ in range(passes):
        for k, cut in enumerate(cuts):
            t = time.perf_counter()
            re_each.mask(cut)
            best_re[k] = min(best_re[k], time.perf_counter() - t)
            for _ in range(3):
                t = time.perf_counter()
                m.mask(cut)
                best_cut[k] = min(best_cut[k], time.perf_counter() - t)
            t = time.perf_counter()
            m.mask(text)
            best_whole = min(best_whole, time.perf_counter() - t)
    re_rate = len(text) / sum(best_re)
    cut_rate = len(text) / sum(best_cut)
    whole_rate = len(text) / best_whole
    print(f"{name}:\n"
          f"  graphwarden  4 MiB {whole_rate / 1e9:6.3f} GB/s   512 KiB cuts {cut_rate / 1e9:6.3f} GB/s\n"
          f"  re-each      512 KiB cuts {re_rate / 1e6:6.2f} MB/s\n"
          f"  vs re-each   4 MiB {whole_rate / re_rate:6.1f}x   512 KiB cuts {cut_rate / re_rate:6.1f}x", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=2, help="rounds over the eight cuts, per phase")
    ap.add_argument("--no-load", action="store_true", help="only the phase without the second process")
    args = ap.parse_args()
    m, re_each = Masker.default(), ReEach()
    text = corpus(8 * CUT, dense=True)
    m.mask(text)
    phase("other cores idle", args.passes, m, re_each, text)
    if args.no_load:
        return 0
    mine = os.sched_getaffinity(0)
    others = sorted(set(range(os.cpu_count() or 1)) - mine)
    if not others:
        print("memory traffic from another core: skipped (no core outside this process's affinity; "
              "run it under `taskset -c 1`)")
        return 0
    load = subprocess.Popen([sys.executable, "-c", LOAD], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.sched_setaffinity(0, {others[0]}))
    try:
        assert load.stdout is not None
        if load.stdout.readline().strip() != "ready":
            print("error: the process copying buffers did not start", file=sys.stderr)
            return 1
        phase(f"while core {others[0]} copies 32 MiB buffers", args.passes, m, re_each, text)
    finally:
        load.kill()
        load.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
