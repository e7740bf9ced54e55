"""`graphwarden masking scan`, `check` and `bench`: tooling for operators who tune the
catalogue."""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections import Counter
from typing import Any

from graphwarden.masking import Catalogue, Masker, default_catalogue, parse_catalogue

#: A pattern set scanning clean text slower than this is reported as slow (bytes per second).
SLOW_SET_BPS = 1e9


def _load(path: str | None) -> Masker:
    return Masker.from_file(path) if path else Masker.default()


def _scan(args: argparse.Namespace) -> int:
    try:
        m = _load(args.catalogue)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = sys.stdin.buffer.read()
    is_json = False
    if not args.text:
        try:
            json.loads(data)
            is_json = bool(data.strip())
        except ValueError:
            is_json = False
    masked = m.mask_json(data) if is_json else m.mask(data)
    findings = m.findings(data)
    summary = Counter(entity for entity, _, _ in findings)
    if args.json:
        print(json.dumps({
            "masked": masked.decode("utf-8", "replace"),
            "json": is_json,
            "findings": [{"entity": e, "start": s, "end": t} for e, s, t in findings],
            "summary": dict(summary),
        }))
    else:
        sys.stdout.buffer.write(masked)
        if not masked.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        total = sum(summary.values())
        detail = ", ".join(f"{k} {v}" for k, v in sorted(summary.items())) or "nothing found"
        print(f"-- {total} finding(s): {detail}", file=sys.stderr)
    return 0


def corpus(size: int, dense: bool, seed: int = 1, values: list[bytes] | None = None) -> bytes:
    """Generated text: prose, ids, timestamps, numbers; with `dense`, one catalogue value per
    ~1 KiB (each drawn from `values`, by default every enabled entry's positive fixtures)."""
    rnd = random.Random(seed)
    words = ("the order was shipped to our customer on 2026-11-24 with tracking id 9f8e7d6c5b4a "
             "invoice INV-482913 total 1249.50 EUR status delivered and signed by the recipient at "
             "the front desk reference 550e8400-e29b-41d4-a716-446655440000 build v2.14.3").split()
    if values is None:
        values = [p.encode() for e in default_catalogue().entries if e.enabled for p in e.positive]
    out = bytearray()
    next_value = 1024
    while len(out) < size:
        out += rnd.choice(words).encode() + b" "
        if dense and len(out) >= next_value:
            out += rnd.choice(values) + b" "
            next_value += 1024
    return bytes(out[:size])


def prose(size: int, seed: int = 1) -> bytes:
    """Generated chat prose without PII (what agent messages mostly are): words, punctuation and
    a few short numbers, unlike `corpus`, whose ids, dates, amounts and UUIDs make digits a
    quarter of the bytes."""
    rnd = random.Random(seed)
    words = ("the assistant reviewed your request and found that the quarterly report needs 3 more "
             "sections before it can be shared with the team, please confirm whether you want a summary "
             "of the open items or the full list of 12 changes we discussed yesterday afternoon").split()
    out = bytearray()
    while len(out) < size:
        out += rnd.choice(words).encode() + (b". " if rnd.random() < 0.07 else b" ")
    return bytes(out[:size])


def image_request(size: int, seed: int = 3) -> bytes:
    """A JSON chat request carrying a base64 image of about `size` bytes (multimodal agent
    messages): random base64 has a '+' and a digit every ~450 bytes and two capitals and two
    digits every ~250, which the phone and IBAN shapes must turn down cheaply."""
    b64 = base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()
    return json.dumps({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}}]}]}).encode()


def _rate(m: Masker, data: bytes, rounds: int = 5) -> float:
    m.mask(data[:4096])
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        m.mask(data)
        best = min(best, time.perf_counter() - t)
    return len(data) / best


def _bench(args: argparse.Namespace) -> int:
    try:
        catalogue = (parse_catalogue(open(args.catalogue, encoding="utf-8").read(), args.catalogue,
                                     base=default_catalogue()) if args.catalogue else default_catalogue())
        whole = Masker(catalogue)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text, clean, dense = prose(args.bytes), corpus(args.bytes, dense=False), corpus(args.bytes, dense=True)
    r_prose, r_clean, r_dense = _rate(whole, text), _rate(whole, clean), _rate(whole, dense)
    print(f"pattern set: {len(whole.entries)} entries")
    print(f"  prose      : {r_prose / 1e9:6.2f} GB/s  (no PII, few digits)")
    print(f"  clean text : {r_clean / 1e9:6.2f} GB/s  (no PII; ids, dates, amounts, UUIDs)")
    print(f"  PII-dense  : {r_dense / 1e9:6.2f} GB/s  (one value per ~1 KiB)")
    per: list[tuple[float, float, str]] = []
    for e in whole.entries:
        single = Masker(Catalogue((e,), catalogue.hash_key or b"\0" * 32))
        per.append((_rate(single, text, 3), _rate(single, clean, 3), e.id))
    per.sort()
    print("slowest entries alone (prose | clean text):")
    for r_p, r_c, ident in per[:5]:
        print(f"  {ident:<28} {r_p / 1e9:6.2f} | {r_c / 1e9:6.2f} GB/s")
    # Ordinary text is what an operator's pattern must not slow down; the digit-heavy clean
    # text is slow for the shipped card, SSN and phone patterns, whatever the operator does.
    if r_prose < SLOW_SET_BPS:
        print(f"warning: this pattern set scans prose at {r_prose / 1e9:.2f} GB/s (< {SLOW_SET_BPS / 1e9:.0f} GB/s); "
              f"slowest entry: {per[0][2]}", file=sys.stderr)
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    """Every enabled entry against its own fixtures, through the compiled engine: each positive
    fixture, in a sentence, must be matched by its entry and masked; each negative one must not
    be matched by it. What an operator runs before putting a catalogue in force (the gateway
    reloads it on SIGHUP); the digest printed is the one the audit trail will record."""
    try:
        m = _load(args.catalogue)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report: list[dict[str, Any]] = []
    for e in m.entries:
        problems: list[str] = []
        for text in e.positive:
            sentence = f"note: {text} (end)".encode()
            if not any(i == e.id for i, _, _ in m.matches(sentence)):
                problems.append(f"positive fixture not matched: {text!r}")
            elif text.encode() in m.mask(sentence):
                problems.append(f"positive fixture matched but left whole in the output (another entry's span?): {text!r}")
        for text in e.negative:
            if any(i == e.id for i, _, _ in m.matches(text.encode())):
                problems.append(f"negative fixture matched: {text!r}")
        report.append({"id": e.id, "positive": len(e.positive), "negative": len(e.negative), "problems": problems,
                       "untested": not e.positive})
    failed = [r for r in report if r["problems"]]
    untested = [r["id"] for r in report if r["untested"]]
    if args.json:
        print(json.dumps({"catalogue": m.source, "digest": m.digest, "entries": report, "failed": len(failed),
                          "untested": untested}))
    else:
        for r in report:
            state = "FAIL" if r["problems"] else ("untested" if r["untested"] else "ok")
            print(f"{state:<8} {r['id']:<28} {r['positive']} positive, {r['negative']} negative")
            for problem in r["problems"]:
                print(f"         {problem}")
        print(f"catalogue {m.source} (BLAKE3 {m.digest}): {len(report)} entries enabled, {len(failed)} failed"
              + (f", {len(untested)} without positive fixtures" if untested else ""))
    if failed or (args.strict and untested):
        return 1
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("masking", help="scan text with the masking catalogue, check its fixtures, or measure it")
    ms = p.add_subparsers(dest="masking_command", metavar="ACTION")
    ms.required = True
    s = ms.add_parser("scan", help="mask standard input and summarise the findings")
    s.add_argument("--catalogue", help="operator catalogue merged over the default one")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--text", action="store_true", help="treat input as text even if it is JSON")
    s.set_defaults(func=_scan)
    c = ms.add_parser("check", help="compile a catalogue and run every entry's fixtures through it")
    c.add_argument("--catalogue", help="operator catalogue merged over the default one")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("--strict", action="store_true", help="an enabled entry without positive fixtures fails too")
    c.set_defaults(func=_check)
    b = ms.add_parser("bench", help="measure a pattern set on generated text; warn when slow")
    b.add_argument("--catalogue", help="operator catalogue merged over the default one")
    b.add_argument("--bytes", type=int, default=4 << 20, help="size of the generated text")
    b.set_defaults(func=_bench)
