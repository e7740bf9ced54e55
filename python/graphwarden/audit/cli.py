"""`graphwarden audit verify | tail | export`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from graphwarden.audit._log import AuditError
from graphwarden.audit._verify import StoredRecord, export_bundle, read_records, verify

_TAIL_POLL_S = 0.5


def register(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="verify, follow and export the audit trail")
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    sub.required = True

    v = sub.add_parser(
        "verify",
        help="check chains, signatures and anchors (exit 0 intact, 1 tampering, 2 incomplete)",
    )
    v.add_argument("path", metavar="DIR", help="audit directory, or a bundle file from `audit export`")
    v.add_argument("--anchor", metavar="DIR", help="anchor directory holding copies of the checkpoints")
    v.add_argument("--key", help="trusted public key: 64 hex digits, a .pub file or the key file")
    v.add_argument("--json", action="store_true", help="print the full report as JSON")
    v.set_defaults(func=_verify)

    t = sub.add_parser("tail", help="print the last records (all chains)")
    t.add_argument("path", metavar="DIR")
    t.add_argument("-n", type=int, default=10, help="records to show per chain (default 10)")
    t.add_argument("--chain", help="only this chain")
    t.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    t.set_defaults(func=_tail)

    e = sub.add_parser("export", help="write a self-contained, verifiable bundle of selected records")
    e.add_argument("path", metavar="DIR")
    group = e.add_mutually_exclusive_group(required=True)
    group.add_argument("--run", metavar="ID", help="records whose body has this run_id")
    group.add_argument("--thread", metavar="ID", help="records whose body has this thread_id")
    group.add_argument("--request", metavar="ID", help="records whose body has this request_id")
    group.add_argument("--since", metavar="T", help="records at or after T (ISO 8601, or Unix seconds)")
    e.add_argument("--out", required=True, metavar="FILE")
    e.set_defaults(func=_export)


def _verify(args: argparse.Namespace) -> int:
    try:
        report = verify(args.path, args.anchor, args.key)
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(report.data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return report.exit_code
    for f in report.data["findings"]:
        print(f"{f['severity'].upper()}: chain {f['chain']}: {f['kind']}: {f['detail']}")
    for c in report.data["chains"]:
        through = c["verified_through"]
        head = f"verified through seq {through}" if through is not None else "verified through no record"
        signed = c["signed_through"]
        print(
            f"chain {c['chain']}: {c['records']} records, {c['checkpoints']} checkpoints"
            f"{', ' + str(c['anchored']) + ' anchored' if c['anchored'] else ''}; {head}"
            f"{'' if signed is None else f' (signed through seq {signed})'}"
        )
        for f in c["findings"]:
            where = f"seq {f['seq']}" if f["seq"] is not None else "-"
            seg = f" in {f['segment']}" if f["segment"] else ""
            print(f"  {f['severity'].upper()}: {f['kind']} at {where}{seg}: {f['detail']}")
    print({0: "INTACT", 1: "TAMPERING DETECTED", 2: "INCOMPLETE"}[report.exit_code])
    return report.exit_code


def _fmt(r: StoredRecord) -> str:
    ts = datetime.fromtimestamp(r.time_ns / 1e9, tz=timezone.utc).isoformat(timespec="microseconds")
    return f"{r.chain} {r.seq} {ts} {r.kind} {r.body.decode('utf-8', 'replace')}"


def _tail(args: argparse.Namespace) -> int:
    try:
        records = read_records(args.path, args.chain)
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last: dict[str, int] = {}
    by_chain: dict[str, list[StoredRecord]] = {}
    for r in records:
        by_chain.setdefault(r.chain, []).append(r)
    for chain, rs in by_chain.items():
        for r in rs[-args.n :] if args.n > 0 else []:
            print(_fmt(r))
        last[chain] = rs[-1].seq
    sys.stdout.flush()
    if not args.follow:
        return 0
    try:
        while True:
            time.sleep(_TAIL_POLL_S)
            for r in read_records(args.path, args.chain, min(last.values(), default=0)):
                if r.seq > last.get(r.chain, -1):
                    print(_fmt(r))
                    last[r.chain] = r.seq
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0


def _parse_since(text: str) -> int:
    try:
        return int(float(text) * 1e9)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"error: --since {text!r}: use ISO 8601 (2026-01-31T12:00:00Z) or Unix seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1e9)


def _export(args: argparse.Namespace) -> int:
    if args.since is not None:
        since_ns = _parse_since(args.since)
        description: dict[str, Any] = {"since_ns": since_ns}

        def select(r: StoredRecord) -> bool:
            return r.time_ns >= since_ns

    else:
        field, value = next(
            (f, v)
            for f, v in (("run_id", args.run), ("thread_id", args.thread), ("request_id", args.request))
            if v is not None
        )
        description = {field: value}

        def select(r: StoredRecord) -> bool:
            body = r.json()
            return isinstance(body, dict) and body.get(field) == value

    try:
        n = export_bundle(args.path, args.out, select, description)
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if n == 0:
        print(f"no record matches {description}; wrote an empty bundle to {args.out}", file=sys.stderr)
        return 2
    report = verify(args.out)
    print(f"exported {n} records to {args.out}; bundle verifies: {report.status}")
    return 0 if report.exit_code == 0 else report.exit_code
