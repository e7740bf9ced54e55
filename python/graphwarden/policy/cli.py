"""`graphwarden policy explain|check`: what the policy decides for a request, and why."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from graphwarden.config import load_config
from graphwarden.errors import ConfigError
from graphwarden.guard import Principal
from graphwarden.policy.engine import BodyError, PolicyError, default_policy_text, parse_policy, read_facts
from graphwarden.policy.routes import RouteTable


def _policy_text(args: argparse.Namespace) -> tuple[str, str]:
    if args.policy:
        return Path(args.policy).read_text("utf-8"), args.policy
    config = load_config(args.config)
    if config.policy.file:
        return Path(config.policy.file).read_text("utf-8"), config.policy.file
    return default_policy_text(), "<embedded default policy>"


def _explain(args: argparse.Namespace) -> int:
    try:
        text, source = _policy_text(args)
        policy = parse_policy(text, source)
    except ConfigError as exc:
        print(exc.render(args.config or "<defaults>"), file=sys.stderr)
        return 2
    except (PolicyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command_ == "check":
        print(f"{source}: ok ({len(policy.rules)} rules)")
        return 0
    principal = Principal(subject=args.subject, groups=tuple(args.group or ()), auth_method="explain")
    op = RouteTable().classify(args.method.upper(), args.path)
    body = Path(args.body).read_bytes() if args.body else None
    try:
        facts = read_facts(op, body if op.body_limit_bytes else None)
    except BodyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    decision = policy.decide(principal, op, facts)
    print(f"policy:     {source}")
    print(f"request:    {args.method.upper()} {args.path}")
    print(f"operation:  {op.name} (resource {op.resource}, action {op.action}, params {op.params})")
    if facts.assistant_ids:
        print(f"assistants: {', '.join(facts.assistant_ids)}")
    print(f"principal:  {principal.subject} groups {list(principal.groups)}")
    print(f"decision:   {decision.effect.value.upper()}")
    print(f"rule:       {decision.rule or '(none matched: default deny)'}")
    if decision.reason:
        print(f"reason:     {decision.reason}")
    if decision.effect.value != "deny":
        print(f"owner scope: {'any owner (cross_owner grant)' if decision.cross_owner else 'own threads, crons, assistants and store namespaces only'}")
    return 0 if decision.effect.value == "allow" else 1


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="explain or check the access policy")
    ps = p.add_subparsers(dest="command_", metavar="ACTION")
    ps.required = True
    e = ps.add_parser("explain", help="print the decision and rule for a request (exit 0 allow, 1 otherwise)")
    e.add_argument("--config", help="gateway config (for policy.file)")
    e.add_argument("--policy", help="policy file (overrides the config)")
    e.add_argument("--subject", required=True)
    e.add_argument("--group", action="append")
    e.add_argument("--method", required=True)
    e.add_argument("--path", required=True, help="request target, e.g. /threads/ID/runs")
    e.add_argument("--body", help="JSON body file")
    e.set_defaults(func=_explain)
    c = ps.add_parser("check", help="validate a policy file")
    c.add_argument("--config")
    c.add_argument("--policy")
    c.set_defaults(func=_explain)
