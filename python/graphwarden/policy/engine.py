"""The policy engine: ordered rules, first match wins, default deny. Pure: no I/O in `decide`.

Policy file (TOML)::

    version = 1

    [[rules]]
    id = "auditors-read-all"          # unique; shown in logs, audit and `policy explain`
    groups = ["auditor"]              # who: any of these groups ...
    subjects = ["alice@example.com"]  # ... or any of these subjects (or `anyone = true`)
    operations = ["threads.*"]        # what: operation-name globs (see policy/routes.py)
    resources = ["threads", "runs"]   #       resources
    actions = ["read", "search"]      #       actions: read search create update delete run cancel admin approve
    assistants = ["agent"]            #       assistant ids / graph ids named by the request
    effect = "allow"                  # allow | deny | approval
    reason = "..."                    # shown to the caller on deny
    cross_owner = true                # may act on threads/crons/assistants/store of others

    [rules.when]                      # optional conditions on the request body
    resume = true                     # carries command.resume
    webhook = true                    # sets a webhook
    stream_modes = ["debug"]          # requests any of these stream modes
    multitask_strategies = ["rollback"]

    [rules.approval]                  # for effect = "approval": passed to the approvals gate
    approvers = ["oncall"]

All listed conditions must hold (an omitted one matches everything); `assistants` and `when`
only match requests that name an assistant / carry the field.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources as importlib_resources
from typing import Any

import orjson

from graphwarden.guard import ApprovalGate, Operation, Principal

ACTIONS = frozenset({"read", "search", "create", "update", "delete", "run", "cancel", "admin", "approve"})
_RULE_KEYS = frozenset(
    {"id", "groups", "subjects", "anyone", "operations", "resources", "actions", "assistants", "effect",
     "reason", "cross_owner", "when", "approval", "description"}
)
_WHEN_KEYS = frozenset({"resume", "webhook", "stream_modes", "multitask_strategies"})


class PolicyError(ValueError):
    """A policy file mistake: `where` names the rule and key."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class Effect(Enum):
    ALLOW = "allow"
    DENY = "deny"
    APPROVAL = "approval"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The body fields that matter to policy, read once from a bounded body."""

    assistant_ids: tuple[str, ...] = ()
    has_resume: bool = False
    has_webhook: bool = False
    stream_modes: tuple[str, ...] = ()
    multitask_strategies: tuple[str, ...] = ()
    #: The decoded JSON body (a dict, a list for batches) or None.
    json: Any = None


class BodyError(ValueError):
    pass


def _strs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def read_facts(op: Operation, body: bytes | None) -> RequestFacts:
    """Facts from the path parameters and (when the route needs it) the JSON body."""
    path_assistant = op.params.get("assistant_id")
    base = (path_assistant,) if path_assistant else ()
    if not body:
        return RequestFacts(assistant_ids=base)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BodyError("request body is not valid JSON") from None
    items = doc if isinstance(doc, list) else [doc]
    assistants = list(base)
    resume = webhook = False
    modes: list[str] = []
    strategies: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        for key in ("assistant_id", "graph_id"):
            v = item.get(key)
            if isinstance(v, str) and v not in assistants:
                assistants.append(v)
        command = item.get("command")
        if isinstance(command, dict) and command.get("resume") is not None:
            resume = True
        if item.get("webhook"):
            webhook = True
        modes.extend(_strs(item.get("stream_mode")))
        strategies.extend(_strs(item.get("multitask_strategy")))
    return RequestFacts(tuple(assistants), resume, webhook, tuple(modes), tuple(strategies), doc)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    effect: Effect
    groups: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    anyone: bool = False
    operations: tuple[str, ...] = ()
    resources: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    assistants: frozenset[str] = frozenset()
    reason: str = ""
    cross_owner: bool = False
    when: Mapping[str, Any] = field(default_factory=dict)
    approval: Mapping[str, object] = field(default_factory=dict)

    def matches_who(self, p: Principal) -> bool:
        if self.anyone:
            return True
        if p.subject in self.subjects:
            return True
        return any(g in self.groups for g in p.groups)

    def matches_what(self, op: Operation, facts: RequestFacts) -> bool:
        if self.resources and op.resource not in self.resources:
            return False
        if self.actions and op.action not in self.actions:
            return False
        if self.operations and not any(fnmatch.fnmatchcase(op.name, pat) for pat in self.operations):
            return False
        if self.assistants:
            if not facts.assistant_ids or not all(a in self.assistants for a in facts.assistant_ids):
                return False
        w = self.when
        if w:
            if "resume" in w and facts.has_resume != w["resume"]:
                return False
            if "webhook" in w and facts.has_webhook != w["webhook"]:
                return False
            if "stream_modes" in w and not any(m in w["stream_modes"] for m in facts.stream_modes):
                return False
            if "multitask_strategies" in w and not any(m in w["multitask_strategies"] for m in facts.multitask_strategies):
                return False
        return True


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    effect: Effect
    rule: str | None
    reason: str
    cross_owner: bool = False
    approval: Mapping[str, object] | None = None


def _str_list(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(where, 'expected a list of non-empty strings, e.g. ["a", "b"]')
    return value


def _rule(i: int, raw: Any, gate: ApprovalGate | None) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(raw, dict):
        raise PolicyError(where, "each [[rules]] entry must be a table")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise PolicyError(where, 'every rule needs an id = "..."')
    where = f"rules[{i}] ({rid})"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise PolicyError(where, f"unknown key(s) {sorted(unknown)}; valid: {sorted(_RULE_KEYS)}")
    try:
        effect = Effect(raw.get("effect"))
    except ValueError:
        raise PolicyError(where, 'effect must be "allow", "deny" or "approval"') from None
    groups = _str_list(f"{where}.groups", raw.get("groups", []))
    subjects = _str_list(f"{where}.subjects", raw.get("subjects", []))
    anyone = raw.get("anyone", False)
    if not isinstance(anyone, bool):
        raise PolicyError(f"{where}.anyone", "expected true or false")
    if not (groups or subjects or anyone):
        raise PolicyError(where, "say who the rule is for: groups, subjects, or anyone = true")
    operations = _str_list(f"{where}.operations", raw.get("operations", []))
    resources = _str_list(f"{where}.resources", raw.get("resources", []))
    actions = _str_list(f"{where}.actions", raw.get("actions", []))
    bad = [a for a in actions if a not in ACTIONS]
    if bad:
        raise PolicyError(f"{where}.actions", f"unknown action(s) {bad}; valid: {sorted(ACTIONS)}")
    assistants = _str_list(f"{where}.assistants", raw.get("assistants", []))
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise PolicyError(f"{where}.reason", "expected a string")
    cross_owner = raw.get("cross_owner", False)
    if not isinstance(cross_owner, bool):
        raise PolicyError(f"{where}.cross_owner", "expected true or false")
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise PolicyError(f"{where}.when", "expected a table")
    unknown = set(when) - _WHEN_KEYS
    if unknown:
        raise PolicyError(f"{where}.when", f"unknown key(s) {sorted(unknown)}; valid: {sorted(_WHEN_KEYS)}")
    for key in ("resume", "webhook"):
        if key in when and not isinstance(when[key], bool):
            raise PolicyError(f"{where}.when.{key}", "expected true or false")
    for key in ("stream_modes", "multitask_strategies"):
        if key in when:
            _str_list(f"{where}.when.{key}", when[key])
    approval = raw.get("approval")
    if effect is Effect.APPROVAL:
        if not isinstance(approval, dict):
            raise PolicyError(where, "effect = \"approval\" needs an [rules.approval] table")
        if gate is not None:
            try:
                gate.validate_spec(rid, approval)
            except ValueError as exc:
                raise PolicyError(f"{where}.approval", str(exc)) from None
    elif approval is not None:
        raise PolicyError(f"{where}.approval", "only rules with effect = \"approval\" take an approval table")
    return Rule(
        id=rid, effect=effect, groups=frozenset(groups), subjects=frozenset(subjects), anyone=anyone,
        operations=tuple(operations), resources=frozenset(resources), actions=frozenset(actions),
        assistants=frozenset(assistants), reason=reason, cross_owner=cross_owner, when=when,
        approval=approval or {},
    )


_DECISION_CACHE_MAX = 20_000


class Policy:
    def __init__(self, rules: list[Rule], source: str) -> None:
        self.rules = rules
        self.source = source
        # decide() is a pure function of these inputs; a policy object never changes (a reload
        # builds a new one), so its memo never goes stale.
        self._memo: dict[tuple[object, ...], PolicyDecision] = {}

    def decide(self, principal: Principal, op: Operation, facts: RequestFacts) -> PolicyDecision:
        key = (principal.subject, principal.groups, op.name, op.resource, op.action, facts.assistant_ids,
               facts.has_resume, facts.has_webhook, facts.stream_modes, facts.multitask_strategies)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._decide(principal, op, facts)
            if len(self._memo) >= _DECISION_CACHE_MAX:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _decide(self, principal: Principal, op: Operation, facts: RequestFacts) -> PolicyDecision:
        for rule in self.rules:
            if rule.matches_who(principal) and rule.matches_what(op, facts):
                if rule.effect is Effect.DENY:
                    return PolicyDecision(Effect.DENY, rule.id, rule.reason or f"denied by policy rule {rule.id}")
                if rule.effect is Effect.APPROVAL:
                    return PolicyDecision(Effect.APPROVAL, rule.id, rule.reason or "approval required", rule.cross_owner, rule.approval)
                return PolicyDecision(Effect.ALLOW, rule.id, "", rule.cross_owner)
        return PolicyDecision(Effect.DENY, None, f"no policy rule allows {op.name} for {principal.subject}")


def parse_policy(text: str, source: str, gate: ApprovalGate | None = None) -> Policy:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError("(file)", f"not valid TOML: {exc}") from None
    unknown = set(raw) - {"version", "rules"}
    if unknown:
        raise PolicyError("(top level)", f"unknown key(s) {sorted(unknown)}; valid: ['rules', 'version']")
    if raw.get("version", 1) != 1:
        raise PolicyError("version", "only version = 1 is understood")
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise PolicyError("rules", "write rules as [[rules]] tables")
    rules = [_rule(i, r, gate) for i, r in enumerate(rules_raw)]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise PolicyError(f"rules ({r.id})", "duplicate rule id")
        seen.add(r.id)
    return Policy(rules, source)


def default_policy_text() -> str:
    return importlib_resources.files("graphwarden.policy").joinpath("default_policy.toml").read_text("utf-8")


__all__ = [
    "ACTIONS", "BodyError", "Effect", "Policy", "PolicyDecision", "PolicyError", "RequestFacts", "Rule",
    "default_policy_text", "parse_policy", "read_facts",
]
