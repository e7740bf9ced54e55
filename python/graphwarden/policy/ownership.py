"""Owner isolation against the real LangGraph server.

Ownership is stored where the server keeps it, so it survives gateway restarts and holds for
every replica: on create, the gateway writes the creator's subject into the resource's metadata
(`policy.owner_metadata_key`, default `graphwarden_owner`); a client's own value is overwritten.
Then:
- searches and counts of threads and crons get the same key forced into their metadata filter,
  so the server only returns the caller's own (assistants are shared configuration: everyone
  with read access sees them, only the owner may change or delete one);
- any operation naming a thread, cron or assistant first learns its owner with a GET through
  the upstream (cached for `owner_cache_s`; an owner never changes because PATCH bodies get the
  existing owner re-written); another owner's resource answers 404, exactly like a missing one,
  so ids cannot be probed;
- store namespaces belong to the subject named by their first label: namespace[0] must be
  the caller's subject (with "%" and "." escaped as %25 and %2E, since labels cannot hold a
  period); searches and namespace listings get that prefix forced;
- bulk operations that could reach other owners' data (thread prune, cancel by status, stateless
  runs that keep their thread) need a cross-owner grant.
A rule with `cross_owner = true` skips all of this (admins, auditors).

`plan` is the pure part: it returns what to check and the rewritten body; `OwnerIndex` does
the upstream lookups.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import h11
import orjson

from graphwarden.errors import GatewayError
from graphwarden.guard import Operation, Principal
from graphwarden.upstream import UpstreamPool

#: Owner lookups answer these for a resource that does not exist upstream.
MISSING = "\x00missing"


class OwnershipDenied(Exception):
    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Check:
    kind: str  # "threads" | "assistants" | "crons"
    id: str
    #: For creates with a client-chosen id: a missing resource is fine, another owner's is not.
    may_be_missing: bool = False
    #: Unowned resources (e.g. the server's own assistants) are acceptable (read-only use).
    unowned_ok: bool = False


@dataclass(slots=True)
class Plan:
    checks: list[Check]
    body: Any = None
    rewrite: bool = False
    #: PATCH: re-write the existing owner (known after the check) into metadata.
    keep_owner_of: Check | None = None
    invalidate: Check | None = None


_ASSISTANT_WRITES = frozenset({"assistants.update", "assistants.delete", "assistants.set_latest"})


def _metadata(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        body["metadata"] = meta
    return meta


#: Creates that stamp the owner (and stateless runs, whose metadata carries it).
_OWNED_CREATES = frozenset({"threads.create", "assistants.create", "crons.create", "crons.create_for_thread",
                            "runs.create", "runs.stream", "runs.wait"})
#: Searches confined to the caller's own objects.
_OWN_SEARCHES = frozenset({"threads.search", "threads.count", "crons.search", "crons.count"})
_CRONS_BY_ID = frozenset({"crons.read", "crons.update", "crons.delete"})
#: Every operation `plan` has something to say about, beyond routes naming a thread or the store.
_PLANNED = _OWNED_CREATES | _OWN_SEARCHES | _CRONS_BY_ID | _ASSISTANT_WRITES | {
    "runs.batch", "threads.prune", "runs.cancel_many"}


def needs_plan(op: Operation) -> bool:
    """False when `plan` would return an empty plan (a `meta` read, an assistant search...): the
    guard then skips ownership altogether."""
    return op.name in _PLANNED or op.resource == "store" or op.params.get("thread_id") is not None


def plan(op: Operation, principal: Principal, body: Any, key: str) -> Plan:
    """What ownership needs for `op`. Raises OwnershipDenied for requests never allowed."""
    name = op.name
    subject = principal.subject
    params = op.params
    p = Plan(checks=[], body=body)
    doc: dict[str, Any] | None = body if isinstance(body, dict) else None

    def own(target: dict[str, Any]) -> None:
        _metadata(target)[key] = subject
        p.rewrite = True

    thread_id = params.get("thread_id")
    if name in _OWNED_CREATES:
        if doc is None:
            doc = {}
            p.body = doc
        own(doc)
        if name == "threads.create" and isinstance(doc.get("thread_id"), str):
            p.checks.append(Check("threads", doc["thread_id"], may_be_missing=True))
        if name == "assistants.create" and isinstance(doc.get("assistant_id"), str):
            p.checks.append(Check("assistants", doc["assistant_id"], may_be_missing=True))
        if name.startswith("runs."):
            _stateless_run(doc, p)
    elif name == "runs.batch":
        if not isinstance(body, list):
            raise OwnershipDenied(400, "bad_request", "runs/batch takes a JSON list of runs")
        for item in body:
            if not isinstance(item, dict):
                raise OwnershipDenied(400, "bad_request", "runs/batch items must be objects")
            own(item)
            _stateless_run(item, p)
    elif name in _OWN_SEARCHES:
        if doc is None:
            doc = {}
            p.body = doc
        own(doc)
    elif name == "threads.prune":
        raise OwnershipDenied(403, "forbidden", "pruning threads needs a cross-owner grant")
    elif name == "runs.cancel_many":
        tid = doc.get("thread_id") if doc else None
        if not isinstance(tid, str):
            raise OwnershipDenied(403, "forbidden", "cancelling runs by status needs a cross-owner grant; name a thread_id")
        p.checks.append(Check("threads", tid))
    elif name in _CRONS_BY_ID:
        check = Check("crons", params["cron_id"])
        p.checks.append(check)
        if name == "crons.update":
            if doc is None:
                raise OwnershipDenied(400, "bad_request", "PATCH needs a JSON object body")
            p.keep_owner_of = check
        if name == "crons.delete":
            p.invalidate = check
    elif name in _ASSISTANT_WRITES:
        check = Check("assistants", params["assistant_id"])
        p.checks.append(check)
        if name == "assistants.update":
            if doc is None:
                raise OwnershipDenied(400, "bad_request", "PATCH needs a JSON object body")
            p.keep_owner_of = check
        if name == "assistants.delete":
            p.invalidate = check
    elif op.resource == "store":
        _store(op, subject, doc, p)
    if thread_id is not None:  # any route naming a thread (incl. dev debug reads)
        check = Check("threads", thread_id)
        p.checks.append(check)
        if name == "threads.update":
            if doc is None:
                raise OwnershipDenied(400, "bad_request", "PATCH needs a JSON object body")
            p.keep_owner_of = check
        elif name == "threads.delete":
            p.invalidate = check
    return p


def _stateless_run(doc: dict[str, Any], p: Plan) -> None:
    if doc.get("on_completion") == "keep":
        raise OwnershipDenied(
            403, "forbidden", "stateless runs that keep their thread are not owned; create a thread and run on it"
        )
    if isinstance(doc.get("thread_id"), str):
        p.checks.append(Check("threads", doc["thread_id"]))


def store_label(subject: str) -> str:
    """The first store-namespace label owned by `subject`. Labels may not contain "." (the
    server joins them with it), so "%" and "." are escaped: reversible, collision-free."""
    return subject.replace("%", "%25").replace(".", "%2E")


def _store(op: Operation, subject: str, doc: dict[str, Any] | None, p: Plan) -> None:
    subject = store_label(subject)

    def require(ns: Any, what: str) -> None:
        if not isinstance(ns, list) or not ns or ns[0] != subject:
            raise OwnershipDenied(
                403, "forbidden", f"{what} must start with your subject {subject!r} (store namespaces are per owner)"
            )

    if op.name == "store.get":
        return  # checked on the query string in check_store_query
    if doc is None:
        raise OwnershipDenied(400, "bad_request", "store requests need a JSON object body")
    if op.name in ("store.put", "store.delete"):
        require(doc.get("namespace"), "namespace")
    elif op.name == "store.search":
        prefix = doc.get("namespace_prefix")
        if prefix in (None, []):
            doc["namespace_prefix"] = [subject]
            p.rewrite = True
        else:
            require(prefix, "namespace_prefix")
    elif op.name == "store.list_namespaces":
        prefix = doc.get("prefix")
        if prefix in (None, []):
            doc["prefix"] = [subject]
            p.rewrite = True
        else:
            require(prefix, "prefix")


def check_store_query(target: str, subject: str) -> None:
    subject = store_label(subject)
    query = target.partition("?")[2]
    values = parse_qs(query, keep_blank_values=True).get("namespace", [])
    if len(values) != 1 or values[0].split(".")[0] != subject:
        raise OwnershipDenied(403, "forbidden", f"namespace must start with your subject {subject!r}")


class OwnerIndex:
    """Owner lookups through the upstream with a TTL cache."""

    def __init__(self, pool: UpstreamPool, authority: str, inject: Sequence[tuple[bytes, bytes]], key: str,
                 cache_s: float, timeout_s: float = 10.0) -> None:
        self.pool = pool
        self.authority = authority.encode("ascii")
        self.inject = list(inject)
        self.key = key
        self.cache_s = cache_s
        self.timeout_s = timeout_s
        self._cache: dict[tuple[str, str], tuple[str | None, float]] = {}
        self.lookups = 0

    _PATHS = {"threads": "/threads/", "assistants": "/assistants/", "crons": "/runs/crons/"}

    def forget(self, check: Check) -> None:
        self._cache.pop((check.kind, check.id), None)

    def remember(self, kind: str, ident: str, owner: str) -> None:
        self._cache[(kind, ident)] = (owner, time.monotonic())

    async def owner(self, kind: str, ident: str) -> str | None:
        """The owner's subject, None for an unowned resource, MISSING when it does not exist."""
        now = time.monotonic()
        hit = self._cache.get((kind, ident))
        if hit is not None and now - hit[1] <= self.cache_s:
            return hit[0]
        owner = await self._fetch(kind, ident)
        if owner != MISSING:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[(kind, ident)] = (owner, now)
        return owner

    async def _fetch(self, kind: str, ident: str) -> str | None:
        self.lookups += 1
        target = (self._PATHS[kind] + quote(ident, safe="")).encode("ascii")
        conn = await self.pool.acquire()
        ok = False
        try:
            conn.send(h11.Request(method=b"GET", target=target, headers=[(b"host", self.authority), *self.inject]))
            conn.send(h11.EndOfMessage())
            head = await conn.next_event(self.timeout_s)
            while type(head) is h11.InformationalResponse:
                head = await conn.next_event(self.timeout_s)
            if type(head) is not h11.Response:
                raise GatewayError("owner lookup: unexpected upstream event", status=502, code="upstream_unavailable")
            parts: list[bytes] = []
            while True:
                ev = await conn.next_event(self.timeout_s)
                if type(ev) is h11.Data:
                    parts.append(bytes(ev.data))
                elif type(ev) is h11.EndOfMessage:
                    break
            ok = True
        finally:
            if ok:
                self.pool.release(conn)
            else:
                conn.close()
        status = head.status_code
        if status in (404, 422):
            return MISSING
        if status != 200:
            raise GatewayError(f"owner lookup of {kind} answered {status}", status=502, code="upstream_unavailable")
        doc = orjson.loads(b"".join(parts))
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        owner = meta.get(self.key) if isinstance(meta, dict) else None
        return owner if isinstance(owner, str) else None


__all__ = ["Check", "MISSING", "store_label", "OwnerIndex", "OwnershipDenied", "Plan", "check_store_query", "plan"]
