"""`graphwarden keys create|list|revoke`: service API keys in the state directory."""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any

from graphwarden.config import load_config
from graphwarden.errors import ConfigError
from graphwarden.identity.keys import KeyStore


def _store(args: argparse.Namespace) -> KeyStore:
    if args.state_dir:
        return KeyStore.for_state_dir(args.state_dir)
    return KeyStore.for_state_dir(load_config(args.config).state.dir)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(args: argparse.Namespace) -> int:
    try:
        store = _store(args)
    except ConfigError as exc:
        print(exc.render(args.config or "<defaults>"), file=sys.stderr)
        return 2
    try:
        if args.keys_command == "create":
            try:
                key, record = store.create(args.subject, tuple(args.group or ()), args.description or "")
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(key)
            print(
                f"created key {record.key_id} for subject {record.subject!r} groups {list(record.groups)} "
                f"in {store.path}; the key is shown only now",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            print(f"{'KEY ID':<14} {'SUBJECT':<20} {'GROUPS':<28} {'CREATED':<21} REVOKED")
            for r in store.list():
                print(f"{r.key_id:<14} {r.subject:<20} {','.join(r.groups):<28} {_when(r.created_at):<21} {_when(r.revoked_at)}")
            return 0
        if store.revoke(args.key_id):
            print(f"revoked {args.key_id}")
            return 0
        print(f"error: no active key {args.key_id!r}", file=sys.stderr)
        return 1
    finally:
        store.close()


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="service API keys (create, list, revoke)")
    p.add_argument("--config", help="gateway config (for state.dir)")
    p.add_argument("--state-dir", help="override state.dir")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION")
    ks.required = True
    c = ks.add_parser("create", help="create a key (printed once on stdout)")
    c.add_argument("--subject", required=True)
    c.add_argument("--group", action="append", help="repeat for several groups")
    c.add_argument("--description")
    ks.add_parser("list", help="list keys (never the secrets)")
    r = ks.add_parser("revoke", help="revoke a key by id")
    r.add_argument("key_id")
    p.set_defaults(func=_run)
