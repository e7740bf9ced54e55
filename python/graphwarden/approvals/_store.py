"""The approval store: SQLite in WAL mode, shared safely by every gateway process on one machine.

Every state change happens inside `BEGIN IMMEDIATE` (one writer at a time across processes), is
checked against the transition table in `_states`, and is written to `approval_events` in the
same transaction. So two approvers acting at once, or two gateways consuming the same one-time
approval, yield exactly one outcome; a crash or restart loses nothing that was committed.

All methods are blocking and short; the async service calls them from a thread executor. Each
thread gets its own connection.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphwarden.approvals._states import TERMINAL, Event, IllegalTransition, State, next_state


#: How long a writer waits for another process's transaction before giving up (SQLite's
#: busy_timeout; transactions here take well under a millisecond).
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    grant_kind TEXT NOT NULL,
    grant_key TEXT,
    requester TEXT NOT NULL,
    requester_groups TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    operation TEXT NOT NULL,
    params TEXT NOT NULL,
    assistant_id TEXT,
    body_sha256 TEXT NOT NULL,
    body_size INTEGER NOT NULL,
    body_view TEXT NOT NULL,
    justification TEXT,
    approver_groups TEXT NOT NULL,
    approvals_required INTEGER NOT NULL,
    mode TEXT NOT NULL,
    grant_seconds REAL NOT NULL,
    request_id TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    decided_at REAL,
    usable_until REAL,
    used_at REAL,
    outcome_reported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS approvals_fingerprint ON approvals (fingerprint, created_at);
CREATE INDEX IF NOT EXISTS approvals_grant ON approvals (grant_key, state);
CREATE INDEX IF NOT EXISTS approvals_state ON approvals (state, expires_at);
CREATE TABLE IF NOT EXISTS approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    approver TEXT NOT NULL,
    decision TEXT NOT NULL,
    at REAL NOT NULL,
    comment TEXT,
    PRIMARY KEY (approval_id, approver)
);
CREATE TABLE IF NOT EXISTS approval_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    event TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS approval_events_id ON approval_events (approval_id, seq);
"""


class ApprovalError(Exception):
    """A refused action by an approver or operator; `status` is the HTTP answer."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NewApproval:
    """What the service knows when a request first needs an approval."""

    rule: str
    fingerprint: str
    grant_kind: str
    grant_key: str | None
    requester: str
    requester_groups: tuple[str, ...]
    method: str
    target: str
    operation: str
    params: dict[str, str]
    assistant_id: str | None
    body_sha256: str
    body_size: int
    #: JSON of what approvers may see of the body (masked body or summary).
    body_view: object
    justification: str | None
    approver_groups: tuple[str, ...]
    approvals_required: int
    mode: str
    expires_seconds: float
    grant_seconds: float
    request_id: str | None = None
    #: The rule requires a justification and the request has none: never create an approval.
    justification_missing: bool = False
    #: Non-None: approve at once for this reason (automatic approval condition).
    auto_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Vote:
    approver: str
    decision: str
    at: float
    comment: str | None


@dataclass(frozen=True, slots=True)
class EventRecord:
    seq: int
    event: str
    from_state: str | None
    to_state: str
    actor: str
    at: float
    comment: str | None


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    rule: str
    state: State
    fingerprint: str
    grant_kind: str
    grant_key: str | None
    requester: str
    requester_groups: tuple[str, ...]
    method: str
    target: str
    operation: str
    params: dict[str, str]
    assistant_id: str | None
    body_sha256: str
    body_size: int
    body_view: object
    justification: str | None
    approver_groups: tuple[str, ...]
    approvals_required: int
    mode: str
    grant_seconds: float
    request_id: str | None
    created_at: float
    expires_at: float
    decided_at: float | None
    usable_until: float | None
    used_at: float | None
    outcome_reported: bool
    votes: tuple[Vote, ...] = ()
    events: tuple[EventRecord, ...] = field(default=())

    def can_act(self, subject: str, groups: tuple[str, ...] | list[str]) -> bool:
        """May this caller approve or deny (ignoring state)? Never the requester."""
        return subject != self.requester and any(g in self.approver_groups for g in groups)

    def to_json(self, *, with_history: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "approval_id": self.id,
            "state": self.state.value,
            "rule": self.rule,
            "requester": self.requester,
            "request": {
                "method": self.method,
                "target": self.target,
                "operation": self.operation,
                "params": self.params,
                "assistant_id": self.assistant_id,
                "body": self.body_view,
                "body_sha256": self.body_sha256,
                "body_size": self.body_size,
                "request_id": self.request_id,
            },
            "justification": self.justification,
            "approver_groups": list(self.approver_groups),
            "approvals_required": self.approvals_required,
            "approvals_given": sum(1 for v in self.votes if v.decision == "approve"),
            "mode": self.mode,
            "grant": self.grant_kind,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_at": self.decided_at,
            "usable_until": self.usable_until,
            "used_at": self.used_at,
            "status_url": f"/_graphwarden/approvals/{self.id}",
        }
        if with_history:
            out["votes"] = [
                {"approver": v.approver, "decision": v.decision, "at": v.at, "comment": v.comment}
                for v in self.votes
            ]
            out["events"] = [
                {"seq": e.seq, "event": e.event, "from": e.from_state, "to": e.to_state, "actor": e.actor,
                 "at": e.at, "comment": e.comment}
                for e in self.events
            ]
        return out


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the store found for a request (see `ApprovalStore.lookup_or_create`)."""

    #: "admit" (consumed or covered), "pending", "denied", "expired", "created", "auto",
    #: "needs_justification" (nothing covers it and the rule wants a justification; no approval).
    kind: str
    approval: Approval | None


def new_approval_id() -> str:
    return "apr_" + secrets.token_urlsafe(12)


def default_clock() -> float:
    return time.time()


class ApprovalStore:
    def __init__(self, path: str | Path, *, clock: Callable[[], float] = default_clock) -> None:
        self.path = Path(path)
        self.clock = clock
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Schema on a short-lived connection: no connection is left open in the constructing
        # thread, so a store built before the workers fork carries none across the fork.
        conn = self._open()
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    # -- connections and transactions ---------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed decision or use survives power loss, not only a process restart.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- transitions ----------------------------------------------------------------------------
    def _transition(self, db: sqlite3.Connection, a: Approval | None, approval_id: str, event: Event,
                    actor: str, comment: str | None, now: float, **columns: object) -> State:
        current = a.state if a is not None else None
        to = next_state(current, event)
        if a is not None and (to is not current or columns):
            sets = ", ".join(["state = ?"] + [f"{k} = ?" for k in columns])
            db.execute(f"UPDATE approvals SET {sets} WHERE id = ?", (to.value, *columns.values(), approval_id))
        db.execute(
            "INSERT INTO approval_events (approval_id, event, from_state, to_state, actor, at, comment)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (approval_id, event.value, current.value if current else None, to.value, actor, now, comment),
        )
        return to

    def _expire_if_due(self, db: sqlite3.Connection, a: Approval, now: float) -> Approval:
        due = (a.state is State.PENDING and now >= a.expires_at) or (
            a.state is State.APPROVED and a.usable_until is not None and now >= a.usable_until
        )
        if not due:
            return a
        why = "not decided in time" if a.state is State.PENDING else (
            "grant window ended" if a.grant_kind == "window" else "approved but not used in time")
        # The natural end of a used grant window is nothing to report to its next requester.
        ended_grant = a.state is State.APPROVED and a.grant_kind == "window"
        self._transition(db, a, a.id, Event.EXPIRE, "system", why, now,
                         **({"outcome_reported": 1} if ended_grant else {}))
        return self._must(db, a.id)

    def _must(self, db: sqlite3.Connection, approval_id: str) -> Approval:
        a = self._get(db, approval_id, history=False)
        assert a is not None, approval_id
        return a

    # -- reading --------------------------------------------------------------------------------
    def _row(self, row: sqlite3.Row) -> Approval:
        return Approval(
            id=row["id"], rule=row["rule"], state=State(row["state"]), fingerprint=row["fingerprint"],
            grant_kind=row["grant_kind"], grant_key=row["grant_key"], requester=row["requester"],
            requester_groups=tuple(json.loads(row["requester_groups"])), method=row["method"],
            target=row["target"], operation=row["operation"], params=json.loads(row["params"]),
            assistant_id=row["assistant_id"], body_sha256=row["body_sha256"], body_size=row["body_size"],
            body_view=json.loads(row["body_view"]), justification=row["justification"],
            approver_groups=tuple(json.loads(row["approver_groups"])),
            approvals_required=row["approvals_required"], mode=row["mode"],
            grant_seconds=row["grant_seconds"], request_id=row["request_id"],
            created_at=row["created_at"], expires_at=row["expires_at"], decided_at=row["decided_at"],
            usable_until=row["usable_until"], used_at=row["used_at"],
            outcome_reported=bool(row["outcome_reported"]),
        )

    def _get(self, db: sqlite3.Connection, approval_id: str, *, history: bool = True) -> Approval | None:
        row = db.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        if row is None:
            return None
        a = self._row(row)
        votes = tuple(
            Vote(r["approver"], r["decision"], r["at"], r["comment"])
            for r in db.execute("SELECT * FROM approval_votes WHERE approval_id = ? ORDER BY at, approver",
                                (approval_id,))
        )
        events: tuple[EventRecord, ...] = ()
        if history:
            events = tuple(
                EventRecord(r["seq"], r["event"], r["from_state"], r["to_state"], r["actor"], r["at"], r["comment"])
                for r in db.execute("SELECT * FROM approval_events WHERE approval_id = ? ORDER BY seq",
                                    (approval_id,))
            )
        return dataclasses.replace(a, votes=votes, events=events)

    def get(self, approval_id: str, *, refresh: bool = True) -> Approval | None:
        """One approval with votes and history; `refresh` first expires it when due."""
        if refresh:
            with self._tx() as db:
                a = self._get(db, approval_id, history=False)
                if a is None:
                    return None
                self._expire_if_due(db, a, self.clock())
                return self._get(db, approval_id)
        return self._get(self._conn(), approval_id)

    def state_of(self, approval_id: str) -> State | None:
        row = self._conn().execute("SELECT state FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        return State(row["state"]) if row else None

    def list_approvals(self, *, states: tuple[State, ...] | None = None, limit: int = 200,
                       expire: bool = True) -> list[Approval]:
        """Approvals newest first (with `expire`, those past their deadline are expired first)."""
        if expire:
            self.expire_due()
        sql = "SELECT * FROM approvals"
        args: list[Any] = []
        if states:
            sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
            args.extend(s.value for s in states)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        args.append(limit)
        db = self._conn()
        return [self._row(r) for r in db.execute(sql, args)]

    def expire_due(self) -> list[Approval]:
        """Expire every pending approval past its deadline and every ended grant; returns those
        this call expired (each exactly once, even with several gateway processes sweeping)."""
        now = self.clock()
        with self._tx() as db:
            rows = db.execute(
                "SELECT * FROM approvals WHERE (state = 'pending' AND expires_at <= ?)"
                " OR (state = 'approved' AND usable_until IS NOT NULL AND usable_until <= ?)",
                (now, now),
            ).fetchall()
            return [self._expire_if_due(db, self._row(r), now) for r in rows]

    def ping(self) -> None:
        """Raises sqlite3.Error when the database cannot be read."""
        self._conn().execute("SELECT 1 FROM approvals LIMIT 1").fetchall()

    # -- the request path -----------------------------------------------------------------------
    def lookup_or_create(self, new: NewApproval) -> Lookup:
        """In one transaction: consume a matching approval or use a grant; else report the current
        outcome of this fingerprint (pending, or denied/expired once); else create a new approval."""
        now = self.clock()
        with self._tx() as db:
            if new.grant_kind == "window" and new.grant_key is not None:
                for row in db.execute(
                    "SELECT * FROM approvals WHERE grant_key = ? AND state = 'approved' ORDER BY created_at DESC, rowid DESC",
                    (new.grant_key,),
                ).fetchall():
                    a = self._expire_if_due(db, self._row(row), now)
                    if a.state is State.APPROVED:
                        self._transition(db, a, a.id, Event.USE_GRANT, new.requester,
                                         f"{new.method} {new.target}", now)
                        return Lookup("admit", a)
            # At most one approval per fingerprint is not terminal, and it is the newest: a new one
            # is only created once the previous one is used or its outcome was reported.
            row = db.execute(
                "SELECT * FROM approvals WHERE fingerprint = ? AND grant_kind = ? AND rule = ?"
                " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (new.fingerprint, new.grant_kind, new.rule),
            ).fetchone()
            if row is not None:
                a = self._expire_if_due(db, self._row(row), now)
                if a.state is State.APPROVED and a.grant_kind == "once":
                    self._transition(db, a, a.id, Event.USE, new.requester, None, now, used_at=now)
                    return Lookup("admit", self._must(db, a.id))
                if a.state is State.PENDING and new.auto_reason is not None:
                    # An automatic condition holds now (e.g. inside the time window).
                    return Lookup("auto", self._auto_approve_and_use(db, a, new, now))
                if a.state is State.PENDING:
                    return Lookup("pending", a)
                if a.state in (State.DENIED, State.EXPIRED) and not a.outcome_reported:
                    db.execute("UPDATE approvals SET outcome_reported = 1 WHERE id = ?", (a.id,))
                    return Lookup(a.state.value, a)
            if new.justification_missing and new.auto_reason is None:
                return Lookup("needs_justification", None)
            return self._create(db, new, now)

    def _create(self, db: sqlite3.Connection, new: NewApproval, now: float) -> Lookup:
        approval_id = new_approval_id()
        db.execute(
            "INSERT INTO approvals (id, rule, state, fingerprint, grant_kind, grant_key, requester,"
            " requester_groups, method, target, operation, params, assistant_id, body_sha256, body_size,"
            " body_view, justification, approver_groups, approvals_required, mode, grant_seconds, request_id,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (approval_id, new.rule, State.PENDING.value, new.fingerprint, new.grant_kind, new.grant_key,
             new.requester, json.dumps(list(new.requester_groups)), new.method, new.target, new.operation,
             json.dumps(new.params), new.assistant_id, new.body_sha256, new.body_size,
             json.dumps(new.body_view), new.justification, json.dumps(list(new.approver_groups)),
             new.approvals_required, new.mode, new.grant_seconds, new.request_id, now,
             now + new.expires_seconds),
        )
        self._transition(db, None, approval_id, Event.REQUEST, new.requester, new.justification, now)
        created = self._must(db, approval_id)
        if new.auto_reason is None:
            return Lookup("created", created)
        return Lookup("auto", self._auto_approve_and_use(db, created, new, now))

    def _auto_approve_and_use(self, db: sqlite3.Connection, a: Approval, new: NewApproval, now: float) -> Approval:
        assert new.auto_reason is not None
        self._approve(db, a, "auto", new.auto_reason, now, Event.AUTO_APPROVE, new.expires_seconds)
        a = self._must(db, a.id)
        if a.grant_kind == "once":
            self._transition(db, a, a.id, Event.USE, new.requester, None, now, used_at=now)
        else:
            self._transition(db, a, a.id, Event.USE_GRANT, new.requester, f"{new.method} {new.target}", now)
        return self._must(db, a.id)

    def _approve(self, db: sqlite3.Connection, a: Approval, actor: str, comment: str | None, now: float,
                 event: Event, once_usable_s: float) -> None:
        usable = a.grant_seconds if a.grant_kind == "window" else once_usable_s
        self._transition(db, a, a.id, event, actor, comment, now, decided_at=now, usable_until=now + usable)

    def consume(self, approval_id: str, actor: str, method: str, target: str) -> Approval | None:
        """Use an approved approval for the request that waited on it: `approved -> used` for a
        one-time approval (exactly once), a recorded use for a grant. None when not usable."""
        now = self.clock()
        with self._tx() as db:
            a = self._get(db, approval_id, history=False)
            if a is None:
                return None
            a = self._expire_if_due(db, a, now)
            if a.state is not State.APPROVED:
                return None
            if a.grant_kind == "once":
                self._transition(db, a, a.id, Event.USE, actor, None, now, used_at=now)
            else:
                self._transition(db, a, a.id, Event.USE_GRANT, actor, f"{method} {target}", now)
            return self._get(db, approval_id, history=False)

    def mark_reported(self, approval_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE approvals SET outcome_reported = 1 WHERE id = ?", (approval_id,))

    # -- approvers ------------------------------------------------------------------------------
    def decide(self, approval_id: str, actor: str, actor_groups: tuple[str, ...] | list[str], decision: str,
               comment: str | None) -> tuple[Approval, bool]:
        """Record an approver's vote. Returns the approval and whether this vote decided it.
        Raises ApprovalError (404 unknown, 403 not allowed / self-approval, 409 not pending or
        already voted)."""
        if decision not in ("approve", "deny"):
            raise ApprovalError(400, "bad_request", f"decision must be approve or deny, not {decision!r}")
        now = self.clock()
        with self._tx() as db:
            a = self._get(db, approval_id, history=False)
            if a is None:
                raise ApprovalError(404, "approval_not_found", f"no approval {approval_id}")
            a = self._expire_if_due(db, a, now)
            if actor == a.requester:
                raise ApprovalError(403, "self_approval", "the requester cannot approve or deny their own request")
            if not any(g in a.approver_groups for g in actor_groups):
                raise ApprovalError(
                    403, "not_an_approver",
                    f"{actor} is not in an approver group of this approval ({', '.join(a.approver_groups)})",
                )
            if a.state is not State.PENDING:
                raise ApprovalError(409, f"approval_{a.state.value}", f"approval {approval_id} is already {a.state.value}")
            if any(v.approver == actor for v in a.votes):
                raise ApprovalError(409, "already_voted", f"{actor} has already voted on approval {approval_id}")
            db.execute("INSERT INTO approval_votes (approval_id, approver, decision, at, comment) VALUES (?, ?, ?, ?, ?)",
                       (approval_id, actor, decision, now, comment))
            decided = True
            if decision == "deny":
                self._transition(db, a, a.id, Event.DENY, actor, comment, now, decided_at=now)
            else:
                given = 1 + sum(1 for v in a.votes if v.decision == "approve")
                if given >= a.approvals_required:
                    once_usable = a.expires_at - a.created_at
                    self._approve(db, a, actor, comment, now, Event.APPROVE, once_usable)
                else:
                    self._transition(db, a, a.id, Event.VOTE, actor, comment, now)
                    decided = False
            out = self._get(db, approval_id)
            assert out is not None
            return out, decided


__all__ = [
    "Approval",
    "ApprovalError",
    "ApprovalStore",
    "EventRecord",
    "IllegalTransition",
    "Lookup",
    "NewApproval",
    "TERMINAL",
    "Vote",
]
