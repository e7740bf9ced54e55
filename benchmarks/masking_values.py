#!/usr/bin/env python3
"""What one value costs graphwarden's `mask()`, by catalogue entry: the digit-heavy text of
`masking_bench.py` (no PII) and the same text with one value per ~1 KiB, the values drawn from
one entry's positive fixtures (and, on the first row, from every entry's, which is the PII-dense
text of `masking_bench.py`). Each text's time is the fastest call of `--calls`, the lowest over
`--rounds` rounds that go through all the texts in turn (so that a slow phase of this shared
machine falls on every text alike); a value's cost is the text's time less the clean text's,
over the number of values. It includes writing the masked copy: the clean text is returned
as it is, with no copy.

Usage: taskset -c 1 python3 benchmarks/masking_values.py [--mib 4] [--rounds 3] [--calls 20]
"""

from __future__ import annotations

import argparse
import sys
import time

from graphwarden.masking import Masker, default_catalogue
from graphwarden.masking.cli import corpus


def fastest(m: Masker, text: bytes, calls: int) -> float:
    best = float("inf")
    for _ in range(calls):
        t = time.perf_counter()
        m.mask(text)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    size = int(args.mib * (1 << 20))
    m = Masker.default()
    entries = [e for e in default_catalogue().entries if e.enabled]
    texts: list[tuple[str, bytes, int]] = [("(none)", corpus(size, dense=False), 0)]
    for name, values in [("(every entry)", None)] + [(e.id, [p.encode() for p in e.positive]) for e in entries]:
        text = corpus(size, dense=True, values=values)
        # one value per KiB after the first: count what `findings` sees, not what was meant
        texts.append((name, text, len(m.findings(text))))
    best = [float("inf")] * len(texts)
    for _ in range(args.rounds):
        for k, (_, text, _) in enumerate(texts):
            best[k] = min(best[k], fastest(m, text, args.calls))
    clean = best[0]
    print(f"{size / (1 << 20):.1f} MiB digit-heavy text: {clean * 1e3:.3f} ms without PII ({size / clean / 1e9:.2f} GB/s)")
    print(f"{'values of':<28} {'findings':>8} {'ms':>8} {'GB/s':>6} {'ns per value':>13}")
    rows = [(name, n, t) for (name, _, n), t in zip(texts[1:], best[1:])]
    first, rest = rows[0], sorted(rows[1:], key=lambda r: -(r[2] - clean) / max(r[1], 1))
    for name, n, t in [first, *rest]:
        print(f"{name:<28} {n:>8} {t * 1e3:8.3f} {size / t / 1e9:6.2f} {(t - clean) / max(n, 1) * 1e9:13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
