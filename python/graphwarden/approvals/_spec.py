"""A policy rule's `[approval]` table, and the request fingerprint an approval is bound to.

Example (inside a policy rule whose effect is "approval"):

    [rules.approval]
    approver_groups = ["sre", "security"]
    approvals_required = 2          # N distinct approvers out of the groups' members
    justification_required = true   # header x-graphwarden-justification or body field
    mode = "hold"                   # or "async": 202 + status URL, re-send after approval
    hold_seconds = 120
    expires_seconds = 3600
    grant = "window"                # or "once": bound to the exact request
    grant_seconds = 1800
    grant_scope = "group"
    grant_group = "analysts"
    [rules.approval.auto_approve]
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    hours_utc = [9, 17]
    assistants = ["faq-bot"]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Literal

import msgspec
import orjson

from graphwarden.guard import Operation, Principal

JUSTIFICATION_HEADER = b"x-graphwarden-justification"
#: Longest justification kept (a reason, not a document).
MAX_JUSTIFICATION_CHARS = 2000
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class AutoApprove(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Approve without a human when every condition given here holds (an empty table never does)."""

    #: UTC weekdays, e.g. ["mon", "fri"]. Empty: any day.
    weekdays: list[str] = msgspec.field(default_factory=list)
    #: [start, end) hours in UTC, 0..24, e.g. [9, 17]. Absent: any hour.
    hours_utc: list[int] | None = None
    #: Low-risk assistant ids or graph ids. Empty: any assistant.
    assistants: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        bad = [d for d in self.weekdays if d not in WEEKDAYS]
        if bad:
            raise ValueError(f"auto_approve.weekdays: unknown day {bad[0]!r} (use {', '.join(WEEKDAYS)})")
        if self.hours_utc is not None:
            if len(self.hours_utc) != 2 or not 0 <= self.hours_utc[0] < self.hours_utc[1] <= 24:
                raise ValueError("auto_approve.hours_utc: write [start, end) with 0 <= start < end <= 24")
        if not self.weekdays and self.hours_utc is None and not self.assistants:
            raise ValueError("auto_approve: give at least one of weekdays, hours_utc, assistants")

    def holds(self, now: float, assistant: str | None) -> str | None:
        """A short description of why the request is auto-approved, or None."""
        when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
        reasons: list[str] = []
        if self.weekdays:
            if WEEKDAYS[when.weekday()] not in self.weekdays:
                return None
            reasons.append(f"weekday {WEEKDAYS[when.weekday()]}")
        if self.hours_utc is not None:
            start, end = self.hours_utc
            if not start <= when.hour < end:
                return None
            reasons.append(f"hour {when.hour} UTC in [{start}, {end})")
        if self.assistants:
            if assistant is None or assistant not in self.assistants:
                return None
            reasons.append(f"low-risk assistant {assistant}")
        return "; ".join(reasons)


class ApprovalSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    #: Members of any of these groups may approve or deny.
    approver_groups: list[str]
    #: Distinct approvers needed (N of M). The requester never counts.
    approvals_required: int = 1
    justification_required: bool = False
    #: Dotted path of the body field holding the justification (the header always works too).
    justification_field: str = "metadata.justification"
    #: "hold": keep the request open until decided (up to hold_seconds); "async": answer 202.
    mode: Literal["hold", "async"] = "hold"
    #: None: the gateway's approvals.hold_seconds.
    hold_seconds: float | None = None
    #: A pending approval not decided within this becomes expired; an approved one-time approval
    #: not used within this after its approval too.
    expires_seconds: float = 3600.0
    #: "once": bound to the exact request fingerprint, consumed once. "window": a time-boxed grant
    #: for the same operation and assistant.
    grant: Literal["once", "window"] = "once"
    grant_seconds: float = 1800.0
    #: Window grants cover the requesting principal, or every member of `grant_group`.
    grant_scope: Literal["principal", "group"] = "principal"
    grant_group: str | None = None
    auto_approve: AutoApprove | None = None

    def __post_init__(self) -> None:
        if not self.approver_groups or any(not g for g in self.approver_groups):
            raise ValueError("approver_groups: name at least one non-empty group")
        if not 1 <= self.approvals_required <= 10:
            raise ValueError("approvals_required: use between 1 and 10 distinct approvers")
        if self.hold_seconds is not None and not 0 <= self.hold_seconds <= 3600:
            raise ValueError("hold_seconds: use between 0 and 3600 seconds")
        if self.expires_seconds <= 0:
            raise ValueError("expires_seconds: use a number of seconds above 0")
        if self.grant_seconds <= 0:
            raise ValueError("grant_seconds: use a number of seconds above 0")
        if self.grant_scope == "group" and not self.grant_group:
            raise ValueError('grant_group: required when grant_scope = "group"')
        if not self.justification_field or any(not p for p in self.justification_field.split(".")):
            raise ValueError("justification_field: write a dotted path such as metadata.justification")


def parse_spec(rule: str, spec: Mapping[str, object]) -> ApprovalSpec:
    """Decode a rule's [approval] table. Raises ValueError with one line naming the rule."""
    try:
        return msgspec.convert(dict(spec), ApprovalSpec, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, _, where = text.rpartition(" - at `")
        if not _:
            message, where = text, ""
        path = where.rstrip("`").removeprefix("$").lstrip(".")
        at = f" at {path}" if path else ""
        raise ValueError(f"rule {rule!r} [approval]{at}: {message}") from None


# -- fingerprints ------------------------------------------------------------------------------


class _NotCanonical(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _NotCanonical("duplicate key")  # parsers disagree on which value wins: hash raw bytes
    return out


def _reject_constant(name: str) -> object:
    raise _NotCanonical(name)


def canonical_body(body: bytes | None) -> bytes:
    """JSON bodies re-encoded with sorted keys and no whitespace (so key order and spacing do not
    matter); anything else, and JSON with duplicate keys or NaN/Infinity, as sent.

    The stdlib parser keeps integers exact (orjson turns those above 64 bits into floats, which
    would merge different values); a float is compared as the double every JSON parser, the
    LangGraph server's included, reads from it."""
    if not body:
        return b""
    try:
        parsed = json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
        text = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return body
    return text.encode("utf-8", "surrogatepass")


def body_sha256(body: bytes | None) -> str:
    return hashlib.sha256(canonical_body(body)).hexdigest()


def _digest(parts: list[object]) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def fingerprint(principal: Principal, method: str, op: Operation, body: bytes | None, *,
                body_digest: str | None = None) -> str:
    """What a one-time approval is bound to: who, which method and operation with its route
    parameters, and the canonical body hash (`body_digest` when already computed)."""
    digest = body_digest if body_digest is not None else body_sha256(body)
    return _digest(["v1", principal.subject, method.upper(), op.name, dict(op.params), digest])


def grant_key(rule: str, spec: ApprovalSpec, principal: Principal, op: Operation, assistant: str | None) -> str:
    """What a time-boxed grant is bound to: scope (principal or group), rule, operation and assistant."""
    if spec.grant_scope == "group" and spec.grant_group in principal.groups:
        scope = ["group", spec.grant_group]
    else:
        scope = ["principal", principal.subject]
    return _digest(["grant-v1", scope, rule, op.name, assistant or ""])


def json_body(body: bytes | None) -> object:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def assistant_of(op: Operation, parsed: object) -> str | None:
    """The assistant (or graph) id a run request names: route param or body field."""
    if "assistant_id" in op.params:
        return op.params["assistant_id"]
    if isinstance(parsed, dict):
        value = parsed.get("assistant_id")
        if isinstance(value, str):
            return value
    return None


def field_at(parsed: object, dotted: str) -> object:
    node = parsed
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def justification_of(
    spec: ApprovalSpec, headers: tuple[tuple[bytes, bytes], ...], parsed: object
) -> str | None:
    for name, value in headers:
        if name == JUSTIFICATION_HEADER:
            text = value.decode("utf-8", "replace").strip()
            if text:
                return text[:MAX_JUSTIFICATION_CHARS]
    found = field_at(parsed, spec.justification_field)
    if isinstance(found, str) and found.strip():
        return found.strip()[:MAX_JUSTIFICATION_CHARS]
    return None


def body_summary(body: bytes | None, *, parsed: object = None, body_digest: str | None = None) -> dict[str, object]:
    """What an approver sees of a body when no masking hook is installed: never raw values."""
    if parsed is None:
        parsed = json_body(body)
    keys: list[str] | None = sorted(parsed) if isinstance(parsed, dict) else None
    return {
        "sha256": body_digest if body_digest is not None else body_sha256(body),
        "size": len(body or b""),
        "json": parsed is not None,
        "top_level_keys": keys,
    }


__all__ = [
    "ApprovalSpec",
    "AutoApprove",
    "JUSTIFICATION_HEADER",
    "assistant_of",
    "body_sha256",
    "body_summary",
    "canonical_body",
    "fingerprint",
    "grant_key",
    "json_body",
    "justification_of",
    "parse_spec",
]
