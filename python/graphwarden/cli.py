"""The `graphwarden` command.

Each area owns its subcommands in `graphwarden/<area>/cli.py`, which exposes
`register(subparsers: argparse._SubParsersAction) -> None`; every subcommand sets `func` to a
callable taking the parsed namespace and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Areas that contribute subcommands. Listed explicitly: a missing module is a packaging bug.
_AREA_MODULES: tuple[str, ...] = (
    "graphwarden.serve_cli",
    "graphwarden.masking.cli",
    "graphwarden.audit.cli",
    "graphwarden.identity.cli",
    "graphwarden.policy.cli",
    "graphwarden.approvals.cli",
    "graphwarden.replay.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphwarden", description="SOC 2 guardrail gateway for LangGraph agent servers"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _AREA_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
