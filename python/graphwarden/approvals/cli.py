"""`graphwarden approvals list|show|approve|deny`.

Talks to the store directly (`--state-dir`, `--config` or `--db`: an operator on the gateway's
machine, who says who they are with `--as` and `--group`), or to a running gateway over HTTP
(`--gateway URL --token T`, authenticated and authorised like any other API call).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import orjson

from graphwarden.approvals._notify import Notifier, NotifySettings
from graphwarden.approvals._states import State
from graphwarden.approvals._store import Approval, ApprovalError, ApprovalStore
from graphwarden.config import load_config
from graphwarden.errors import ConfigError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


def _store(args: argparse.Namespace) -> tuple[ApprovalStore, Notifier | None]:
    """The store, and (with --config) the notifier its gateway would use for decisions."""
    if args.db:
        return ApprovalStore(args.db), None
    if args.state_dir:
        return ApprovalStore(os.path.join(args.state_dir, "approvals.sqlite3")), None
    config = load_config(args.config)
    ac = config.approvals
    notifier = Notifier(NotifySettings(
        webhook_urls=tuple(ac.webhook_urls), slack_webhook_url=ac.resolved_slack_url(),
        timeout_s=ac.notify_timeout_s, retries=ac.notify_retries, backoff_s=ac.notify_backoff_s,
        public_base_url=ac.public_base_url,
    ))
    return ApprovalStore(ac.resolved_db_path(config.state.dir)), notifier


def _notify_now(notifier: Notifier, kind: str, a: Approval) -> None:
    async def send() -> None:
        notifier.notify(kind, a)
        await notifier.drain(notifier.settings.timeout_s * (notifier.settings.retries + 1) + 10)

    asyncio.run(send())
    notifier.close()
    if notifier.failed:
        print(f"warning: {notifier.failed} notification(s) could not be delivered", file=sys.stderr)


def _http(args: argparse.Namespace, method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, Any]:
    token = args.token or os.environ.get("GRAPHWARDEN_TOKEN")
    headers = {"accept": "application/json", "user-agent": "graphwarden-cli"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = orjson.dumps(body)
        headers["content-type"] = "application/json"
    req = urllib.request.Request(args.gateway.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:  # noqa: S310 - operator's URL
            return resp.status, orjson.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, orjson.loads(raw)
        except orjson.JSONDecodeError:
            return exc.code, {"error": f"http_{exc.code}", "reason": raw.decode("utf-8", "replace")[:500]}


def _when(ts: object) -> str:
    if not isinstance(ts, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def _print_table(items: list[dict[str, Any]]) -> None:
    if not items:
        print("no approvals")
        return
    print(f"{'ID':<22} {'STATE':<9} {'VOTES':<6} {'REQUESTER':<20} {'OPERATION':<28} CREATED")
    for it in items:
        votes = f"{it.get('approvals_given', 0)}/{it.get('approvals_required', 1)}"
        req = it.get("request", {})
        print(f"{it['approval_id']:<22} {it['state']:<9} {votes:<6} {str(it['requester'])[:20]:<20} "
              f"{str(req.get('operation'))[:28]:<28} {_when(it.get('created_at'))}")


def _refused(code: str, reason: str) -> int:
    print(f"refused: {code}: {reason}", file=sys.stderr)
    return EXIT_REFUSED


def _cmd(args: argparse.Namespace) -> int:
    try:
        if args.gateway:
            return _via_gateway(args)
        return _via_store(args)
    except ConfigError as exc:
        print(exc.render(args.config or "<defaults>"), file=sys.stderr)
        return EXIT_USAGE
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: cannot reach {args.gateway or 'the store'}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _via_gateway(args: argparse.Namespace) -> int:
    if args.action == "list":
        state = "all" if args.all else (args.state or "pending")
        status, body = _http(args, "GET", f"/_graphwarden/approvals?state={state}")
    elif args.action == "show":
        status, body = _http(args, "GET", f"/_graphwarden/approvals/{args.id}")
    else:
        payload: dict[str, object] = {"comment": args.comment} if args.comment else {}
        status, body = _http(args, "POST", f"/_graphwarden/approvals/{args.id}/{args.action}", payload)
    if status >= 400 or not isinstance(body, dict):
        err = body if isinstance(body, dict) else {}
        return _refused(str(err.get("error", f"http_{status}")), str(err.get("reason", "")))
    return _output(args, body)


def _output(args: argparse.Namespace, body: dict[str, Any]) -> int:
    if args.action == "list" and not args.json:
        _print_table(body["approvals"])
    elif args.action in ("approve", "deny") and not args.json:
        a = body["approval"]
        print(f"{a['approval_id']}: {a['state']} ({a['approvals_given']}/{a['approvals_required']} approvals)")
    else:
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK


def _view(a: Approval) -> dict[str, object]:
    return a.to_json(with_history=True)


def _via_store(args: argparse.Namespace) -> int:
    store, notifier = _store(args)
    try:
        if args.action == "list":
            states = None if args.all else (State(args.state or "pending"),)
            items = [
                a for a in store.list_approvals(states=states, limit=500)
                if not args.as_subject or a.requester == args.as_subject
                or a.can_act(args.as_subject, args.group or [])
            ]
            return _output(args, {"approvals": [a.to_json(with_history=False) for a in items]})
        if args.action == "show":
            found = store.get(args.id)
            if found is None:
                return _refused("approval_not_found", f"no approval {args.id}")
            return _output(args, _view(found))
        if not args.as_subject or not args.group:
            print("error: approve/deny on the store needs --as SUBJECT and at least one --group", file=sys.stderr)
            return EXIT_USAGE
        try:
            a, decided = store.decide(args.id, args.as_subject, args.group, args.action, args.comment)
        except ApprovalError as exc:
            return _refused(exc.code, exc.reason)
        # Held requests in running gateways see the decision at their next store poll.
        if decided and notifier is not None and notifier.enabled:
            _notify_now(notifier, "approval.approved" if a.state is State.APPROVED else "approval.denied", a)
        return _output(args, {"decided": decided, "approval": _view(a)})
    finally:
        store.close()


def register(sub: Any) -> None:
    p = sub.add_parser("approvals", help="list, show, approve or deny just-in-time approvals")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def common(q: argparse.ArgumentParser) -> None:
        where = q.add_argument_group("where approvals live (one of)")
        where.add_argument("--gateway", help="URL of a running gateway (uses its /_graphwarden/approvals API)")
        where.add_argument("--token", help="bearer token for --gateway (default: $GRAPHWARDEN_TOKEN)")
        where.add_argument("--config", help="gateway TOML config: use its approvals store")
        where.add_argument("--state-dir", help="state directory holding approvals.sqlite3")
        where.add_argument("--db", help="path of the approvals SQLite database")
        q.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds (--gateway)")
        q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=_cmd)

    ls = actions.add_parser("list", help="pending approvals (yours to act on, with --as/--group on the store)")
    ls.add_argument("--all", action="store_true", help="every state, not only pending")
    ls.add_argument("--state", choices=[s.value for s in State], help="only this state")
    ls.add_argument("--as", dest="as_subject", help="store: only approvals this subject requested or may act on")
    ls.add_argument("--group", action="append", help="store: groups of --as (repeatable)")
    common(ls)
    show = actions.add_parser("show", help="one approval with its masked request, votes and history")
    show.add_argument("id")
    common(show)
    for name in ("approve", "deny"):
        q = actions.add_parser(name, help=f"{name} an approval")
        q.add_argument("id")
        q.add_argument("--as", dest="as_subject", help="store: the approver's subject")
        q.add_argument("--group", action="append", help="store: the approver's group (repeatable)")
        q.add_argument("--comment", help="reason recorded with the decision")
        common(q)


__all__ = ["register"]
