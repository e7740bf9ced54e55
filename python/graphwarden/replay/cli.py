"""`graphwarden replay`: rebuild a run, a thread or a request from the audit trail.

The chain is verified before anything is rebuilt. Exit codes (docs/REPLAY.md):

- 0: replay rendered; the chain is intact, or incomplete (e.g. a torn tail after a crash) but
  every record the replay uses lies inside the verified part (the output carries a warning).
- 1: the trail is tampered: the verification problems are printed and nothing is replayed.
- 2: usage error or the audit trail could not be opened/read.
- 3: no record mentions the requested run, thread or request.
- 4: the trail is incomplete and the replay uses records outside the verified part: rendered
  with every such record marked unverified, but the exit code says it is not evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from graphwarden.replay.model import QueryKind, UnknownId, build_replay, select_records
from graphwarden.replay.render import FORMATS, render
from graphwarden.replay.source import (
    JsonlSource,
    RecordSource,
    ReplaySourceError,
    Verification,
    open_source,
    verification_from_json,
)

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_UNKNOWN_ID = 3
EXIT_UNVERIFIED = 4


def _fixture_source(records: str, verification_file: str | None) -> RecordSource:
    verification: Verification | None = None
    if verification_file is not None:
        try:
            obj = json.loads(Path(verification_file).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ReplaySourceError(f"{verification_file}: cannot read verification ({exc})") from None
        verification = verification_from_json(obj, verification_file)
    return JsonlSource(records, verification)


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(out)
    # Write next to the target then rename, so a half-written report never looks complete.
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_replay(args: argparse.Namespace) -> int:
    kind, ident = (
        (QueryKind.RUN, args.run) if args.run is not None
        else (QueryKind.THREAD, args.thread) if args.thread is not None
        else (QueryKind.REQUEST, args.request)
    )
    try:
        if args.records is not None:
            source = _fixture_source(args.records, args.records_verification)
        else:
            if args.audit is None:
                print("graphwarden replay: --audit DIR is required", file=sys.stderr)
                return EXIT_USAGE
            source = open_source(args.audit, args.anchor)
        verification = source.verify()
        if verification.status == "tampered":
            print(f"graphwarden replay: REFUSED, the audit trail is tampered: {verification.message}", file=sys.stderr)
            for problem in verification.problems:
                print(f"  {problem}", file=sys.stderr)
            print("  nothing was replayed; run `graphwarden audit verify` for details", file=sys.stderr)
            return EXIT_TAMPERED
        # Two passes over the trail keep memory bounded by its requests, not its payloads.
        replay = build_replay(select_records(source.records, kind, ident), verification, kind, ident)
    except ReplaySourceError as exc:
        print(f"graphwarden replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnknownId as exc:
        print(f"graphwarden replay: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN_ID
    try:
        _write(render(replay, args.format), args.out)
    except OSError as exc:
        print(f"graphwarden replay: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if verification.status == "incomplete":
        print(f"graphwarden replay: WARNING, the audit trail is incomplete: {verification.message}", file=sys.stderr)
        if replay.unverified_refs:
            print(
                f"  {len(replay.unverified_refs)} record(s) of this replay are outside the verified range",
                file=sys.stderr,
            )
            return EXIT_UNVERIFIED
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="rebuild a run, thread or request from the audit trail",
        description="Verify the audit chain, then rebuild who started a graph execution, the policy "
        "decision, the approval, every step with its masked data and timing, and the outcome.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="ID", help="one run")
    which.add_argument("--thread", metavar="ID", help="all runs of a thread, in order")
    which.add_argument("--request", metavar="ID", help="the run a request started, or the request alone")
    p.add_argument("--audit", metavar="DIR", help="audit directory")
    p.add_argument("--anchor", metavar="DIR", help="anchor directory (external checkpoints)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    # Test-only: read records from a JSON-lines fixture instead of an audit chain. A fixture is
    # never chain-verified; without --records-verification it reports "incomplete".
    p.add_argument("--records", metavar="FILE.jsonl", help=argparse.SUPPRESS)
    p.add_argument("--records-verification", metavar="FILE.json", help=argparse.SUPPRESS)
    p.set_defaults(func=run_replay)
