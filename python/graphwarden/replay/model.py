"""Rebuild a graph execution (a run, a thread's runs, or one request) from audit records.

Pure data in, data out: `build_replay(records, verification, kind, id)` takes the records of
every chain and the verification result and returns a `Replay`, which the renderers turn into
text, JSON or HTML. Record kinds and body fields are those of docs/AUDIT_EVENTS.md.

How records are linked: a `run` record ties the request that started a run to its run id;
request, response, step, interrupt, resume and error bodies carry `request_id`, `thread_id` and
`run_id` when known, and a record without `run_id` is attributed to the run of its request.
Step order is (step number, timestamp, chain position); a step seen both in the stream and in
the thread history is kept once, preferring the stream copy.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graphwarden.replay.source import AuditRecord, Verification

SCHEMA_VERSION = 1


class QueryKind(enum.Enum):
    RUN = "run"
    THREAD = "thread"
    REQUEST = "request"


class UnknownId(LookupError):
    """No record in the trail mentions the requested run, thread or request."""

    def __init__(self, kind: QueryKind, ident: str) -> None:
        super().__init__(f"no {kind.value} with id {ident!r} in the audit trail")
        self.kind = kind
        self.ident = ident


# --- views (field order is the JSON schema order; see docs/REPLAY.md) ---------------------


@dataclass
class PrincipalView:
    subject: str | None
    display_name: str | None
    groups: list[str]
    auth_method: str | None
    token_id: str | None
    issuer: str | None


@dataclass
class ResponseView:
    ts: str | None
    status: int | None
    outcome: str | None
    run_status: str | None
    duration_ms: float | None
    bytes_in: int | None
    bytes_out: int | None
    events: int | None
    output: Any
    ref: str


@dataclass
class RequestView:
    request_id: str
    ts: str | None
    method: str | None
    path: str | None
    route: str | None
    resource: str | None
    action: str | None
    thread_id: str | None
    run_id: str | None
    assistant_id: str | None
    principal: PrincipalView | None
    client_ip: str | None
    decision: str | None
    rule: str | None
    reason: str | None
    approval_id: str | None
    status: int | None
    stream_mode: Any
    injected_modes: Any
    resume: Any
    input: Any
    response: ResponseView | None
    ref: str | None


@dataclass
class ApprovalEventView:
    transition: str | None
    ts: str | None
    actor: PrincipalView | None
    from_state: str | None
    to_state: str | None
    comment: Any
    request_id: str | None
    ref: str


@dataclass
class ApprovalView:
    approval_id: str
    rule: str | None
    fingerprint: str | None
    requester: PrincipalView | None
    created_at: str | None
    state: str | None
    used: bool
    used_at: str | None
    events: list[ApprovalEventView]
    attempts: list[str]  # request ids that carried this approval id, in time order


@dataclass
class StepView:
    step: int | None
    node: str | None
    namespace: list[str]
    source: str | None
    ts: str | None
    offset_ms: float | None  # since the run started
    delta_ms: float | None  # since the previous step (or the run start for the first)
    data: Any
    request_id: str | None
    in_stream: bool
    in_history: bool
    verified: bool
    ref: str


@dataclass
class ResumeLink:
    request_id: str
    run_id: str | None
    ts: str | None
    subject: str | None
    approval_id: str | None
    value: Any


@dataclass
class InterruptView:
    ts: str | None
    offset_ms: float | None
    node: str | None
    value: Any
    request_id: str | None
    resumed_by: ResumeLink | None
    verified: bool
    ref: str


@dataclass
class ResumeOrigin:
    """The interrupt a resume run continued from."""

    run_id: str | None
    node: str | None
    ts: str | None
    value: Any


@dataclass
class ErrorView:
    ts: str | None
    offset_ms: float | None
    error: Any
    message: Any
    request_id: str | None
    verified: bool
    ref: str


@dataclass
class OutcomeView:
    status: int | None
    outcome: str | None
    run_status: str | None
    duration_ms: float | None
    bytes_in: int | None
    bytes_out: int | None
    events: int | None
    output: Any
    ended_at: str | None


@dataclass
class Gap:
    code: str
    message: str


@dataclass
class RunView:
    run_id: str
    thread_id: str | None
    assistant_id: str | None
    started_at: str | None
    started_by: RequestView | None
    approval_id: str | None
    input: Any
    resume: Any
    resumed_from: ResumeOrigin | None
    steps: list[StepView]
    interrupts: list[InterruptView]
    errors: list[ErrorView]
    outcome: OutcomeView | None
    other_requests: list[RequestView]
    gaps: list[Gap]
    #: Set when the server's cron scheduler started the run (`started_by` created the cron).
    cron_id: str | None = None


@dataclass
class VerificationView:
    status: str
    message: str
    verified_through: dict[str, int]
    problems: list[str]


@dataclass
class QueryView:
    kind: str
    id: str


@dataclass
class Replay:
    schema_version: int
    query: QueryView
    verification: VerificationView
    runs: list[RunView]
    requests: list[RequestView]  # requests in scope that started no run (denied, pending...)
    approvals: list[ApprovalView]
    gaps: list[Gap]
    unverified_refs: list[str] = field(default_factory=list)


# --- helpers ----------------------------------------------------------------------------------


def parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _ms_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_ts(start), parse_ts(end)
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return round((b - a).total_seconds() * 1000.0, 3)


def _ref(r: AuditRecord) -> str:
    return f"{r.chain}#{r.seq}"


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _i(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _f(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    return float(v) if isinstance(v, (int, float)) else None


def _ts(r: AuditRecord) -> str:
    """The observation time: the body's `ts` when present, else the record header's."""
    t = r.body.get("ts")
    return t if isinstance(t, str) and parse_ts(t) is not None else r.ts


def _sort_key(r: AuditRecord) -> tuple[float, str, int]:
    t = parse_ts(_ts(r))
    return (t.timestamp() if t is not None and t.tzinfo is not None else 0.0, r.chain, r.seq)


def _principal(v: Any) -> PrincipalView | None:
    if not isinstance(v, dict):
        return None
    groups = v.get("groups")
    return PrincipalView(
        subject=_s(v.get("subject")),
        display_name=_s(v.get("display_name")),
        groups=[g for g in groups if isinstance(g, str)] if isinstance(groups, list) else [],
        auth_method=_s(v.get("auth_method")),
        token_id=_s(v.get("token_id")),
        issuer=_s(v.get("issuer")),
    )


def _response_view(r: AuditRecord) -> ResponseView:
    b = r.body
    return ResponseView(
        ts=_ts(r),
        status=_i(b.get("status")),
        outcome=_s(b.get("outcome")),
        run_status=_s(b.get("run_status")),
        duration_ms=_f(b.get("duration_ms")),
        bytes_in=_i(b.get("bytes_in")),
        bytes_out=_i(b.get("bytes_out")),
        events=_i(b.get("events")),
        output=b.get("output"),
        ref=_ref(r),
    )


# --- index ------------------------------------------------------------------------------------


class _Index:
    def __init__(self, records: Iterable[AuditRecord], verification: Verification) -> None:
        self.verification = verification
        self.all = sorted(records, key=_sort_key)
        self.requests: dict[str, AuditRecord] = {}
        self.duplicate_requests: list[str] = []
        self.responses: dict[str, AuditRecord] = {}
        self.run_records: dict[str, list[AuditRecord]] = defaultdict(list)  # run_id -> `run`
        self.run_of_request: dict[str, str] = {}
        self.thread_of_run: dict[str, str] = {}
        self.thread_of_request: dict[str, str] = {}
        self.by_kind: dict[str, list[AuditRecord]] = defaultdict(list)
        self.approvals: dict[str, list[AuditRecord]] = defaultdict(list)
        #: cron id -> the request that created the cron (`cron` records)
        self.cron_origin: dict[str, str] = {}
        for r in self.all:
            b = r.body
            self.by_kind[r.kind].append(r)
            rid, tid, run = _s(b.get("request_id")), _s(b.get("thread_id")), _s(b.get("run_id"))
            if r.kind == "request" and rid is not None:
                if rid in self.requests:
                    self.duplicate_requests.append(rid)
                else:
                    self.requests[rid] = r
            elif r.kind == "response" and rid is not None:
                self.responses.setdefault(rid, r)
            elif r.kind == "run" and run is not None:
                self.run_records[run].append(r)
            elif r.kind == "cron":
                cid = _s(b.get("cron_id"))
                if cid is not None and rid is not None:
                    self.cron_origin.setdefault(cid, rid)
            elif r.kind == "approval":
                aid = _s(b.get("approval_id"))
                if aid is not None:
                    self.approvals[aid].append(r)
            # A `run` record is authoritative for which run a request started; other kinds
            # only fill in links that are still unknown.
            if rid is not None and run is not None and r.kind != "approval":
                if r.kind == "run":
                    self.run_of_request[rid] = run
                else:
                    self.run_of_request.setdefault(rid, run)
            if run is not None and tid is not None:
                self.thread_of_run.setdefault(run, tid)
            if rid is not None and tid is not None:
                self.thread_of_request.setdefault(rid, tid)

        # Second pass, once every link is known: the run events of each run, in time order.
        self.run_events: dict[str, list[AuditRecord]] = defaultdict(list)
        for kind in ("step", "interrupt", "error", "resume"):
            for r in self.by_kind[kind]:
                run = self.run_of(r)
                if run is not None:
                    self.run_events[run].append(r)
        for events in self.run_events.values():
            events.sort(key=_sort_key)
        self.requests_of_run: dict[str, list[str]] = defaultdict(list)
        for rid, run in self.run_of_request.items():
            self.requests_of_run[run].append(rid)

    def run_of(self, r: AuditRecord) -> str | None:
        run = _s(r.body.get("run_id"))
        if run is not None:
            return run
        rid = _s(r.body.get("request_id"))
        return self.run_of_request.get(rid) if rid is not None else None

    def thread_of(self, r: AuditRecord) -> str | None:
        tid = _s(r.body.get("thread_id"))
        if tid is not None:
            return tid
        run = self.run_of(r)
        if run is not None and run in self.thread_of_run:
            return self.thread_of_run[run]
        rid = _s(r.body.get("request_id"))
        return self.thread_of_request.get(rid) if rid is not None else None

    def known_runs(self) -> set[str]:
        return set(self.run_records) | set(self.run_events) | set(self.run_of_request.values())

    def cron_run(self, run: str) -> AuditRecord | None:
        """The `run` record of a run the server's cron scheduler started, if it is one."""
        for r in self.run_records.get(run, []):
            if r.body.get("source") == "cron":
                return r
        return None

    def starter_of(self, run: str) -> str | None:
        """The request that started `run`: named by the first `run` record, else inferred. A
        cron's run was started by the request that created the cron."""
        for r in self.run_records.get(run, []):
            rid = _s(r.body.get("request_id"))
            if rid is not None:
                return rid
        cron = self.cron_run(run)
        if cron is not None:
            return self.cron_origin.get(_s(cron.body.get("cron_id")) or "")
        candidates = self.requests_of_run.get(run, [])
        creating = [c for c in candidates if c in self.requests and _is_run_creating(self.requests[c].body)]
        pool = creating or candidates
        if not pool:
            return None
        return min(pool, key=lambda c: _sort_key(self.requests[c]) if c in self.requests else (0.0, "", 0))


def _is_run_creating(body: dict[str, Any]) -> bool:
    """A request that can start a run (POST to a runs collection), as opposed to join/get/cancel."""
    method = _s(body.get("method"))
    path = _s(body.get("path")) or ""
    action = _s(body.get("action")) or ""
    if action.startswith("create_run") or action in ("create_run", "run"):
        return True
    return method == "POST" and (path.endswith("/runs") or path.endswith("/runs/stream") or path.endswith("/runs/wait"))


# --- builder ----------------------------------------------------------------------------------


class _Builder:
    def __init__(self, index: _Index) -> None:
        self.ix = index
        self.used_refs: set[tuple[str, int]] = set()
        self.approval_ids: list[str] = []

    def use(self, r: AuditRecord) -> str:
        self.used_refs.add((r.chain, r.seq))
        return _ref(r)

    def verified(self, r: AuditRecord) -> bool:
        return self.ix.verification.covers(r)

    def note_approval(self, aid: str | None) -> None:
        if aid is not None and aid not in self.approval_ids:
            self.approval_ids.append(aid)

    def request_view(self, rid: str) -> RequestView:
        r = self.ix.requests.get(rid)
        resp = self.ix.responses.get(rid)
        response = None
        if resp is not None:
            self.use(resp)
            response = _response_view(resp)
        if r is None:
            return RequestView(
                request_id=rid, ts=None, method=None, path=None, route=None, resource=None,
                action=None, thread_id=self.ix.thread_of_request.get(rid),
                run_id=self.ix.run_of_request.get(rid), assistant_id=None, principal=None,
                client_ip=None, decision=None, rule=None, reason=None, approval_id=None,
                status=None, stream_mode=None, injected_modes=None, resume=None, input=None,
                response=response, ref=None,
            )
        b = r.body
        aid = _s(b.get("approval_id"))
        self.note_approval(aid)
        return RequestView(
            request_id=rid,
            ts=_ts(r),
            method=_s(b.get("method")),
            path=_s(b.get("path")),
            route=_s(b.get("route")),
            resource=_s(b.get("resource")),
            action=_s(b.get("action")),
            thread_id=_s(b.get("thread_id")) or self.ix.thread_of_request.get(rid),
            run_id=_s(b.get("run_id")) or self.ix.run_of_request.get(rid),
            assistant_id=_s(b.get("assistant_id")),
            principal=_principal(b.get("principal")),
            client_ip=_s(b.get("client_ip")),
            decision=_s(b.get("decision")),
            rule=_s(b.get("rule")),
            reason=_s(b.get("reason")),
            approval_id=aid,
            status=_i(b.get("status")),
            stream_mode=b.get("stream_mode"),
            injected_modes=b.get("injected_modes"),
            resume=b.get("resume"),
            input=b.get("input"),
            response=response,
            ref=self.use(r),
        )

    def approval_view(self, aid: str) -> ApprovalView | None:
        recs = self.ix.approvals.get(aid, [])
        attempts = [
            rid for rid, r in self.ix.requests.items()  # insertion order is time order
            if _s(r.body.get("approval_id")) == aid
        ]
        if not recs:
            return None
        events: list[ApprovalEventView] = []
        rule = fingerprint = created_at = state = used_at = None
        requester: PrincipalView | None = None
        used = False
        for r in recs:
            b = r.body
            transition = _s(b.get("transition"))
            rule = rule or _s(b.get("rule"))
            fingerprint = fingerprint or _s(b.get("fingerprint"))
            if requester is None:
                requester = _principal(b.get("requester"))
            if transition == "created" and created_at is None:
                created_at = _ts(r)
            if transition == "used":
                used, used_at = True, _ts(r)
            to_state = _s(b.get("to"))
            if to_state is not None:
                state = to_state
            elif transition in ("approved", "denied", "expired", "used"):
                state = transition
            events.append(
                ApprovalEventView(
                    transition=transition,
                    ts=_ts(r),
                    actor=_principal(b.get("actor")),
                    from_state=_s(b.get("from")),
                    to_state=to_state,
                    comment=b.get("comment"),
                    request_id=_s(b.get("request_id")),
                    ref=self.use(r),
                )
            )
        return ApprovalView(
            approval_id=aid, rule=rule, fingerprint=fingerprint, requester=requester,
            created_at=created_at, state=state, used=used, used_at=used_at, events=events,
            attempts=attempts,
        )

    def resume_link_after(self, thread: str | None, after: str | None) -> ResumeLink | None:
        """The first admitted request on `thread` that resumed an interrupt after `after`."""
        if thread is None:
            return None
        t0 = parse_ts(after)
        for rid, r in self.ix.requests.items():  # insertion order is time order
            b = r.body
            if b.get("resume") is None or self.ix.thread_of(r) != thread:
                continue
            if _s(b.get("decision")) not in (None, "allow"):
                continue  # a pending or denied attempt did not resume anything
            t = parse_ts(_ts(r))
            if t0 is not None and t is not None and t <= t0:
                continue
            principal = _principal(b.get("principal"))
            aid = _s(b.get("approval_id"))
            self.note_approval(aid)
            return ResumeLink(
                request_id=rid,
                run_id=self.ix.run_of_request.get(rid),
                ts=_ts(r),
                subject=principal.subject if principal else None,
                approval_id=aid,
                value=b.get("resume"),
            )
        return None

    def run_view(self, run: str) -> RunView:
        ix = self.ix
        gaps: list[Gap] = []
        starter = ix.starter_of(run)
        for r in ix.run_records.get(run, []):
            self.use(r)
        started_by = self.request_view(starter) if starter is not None else None
        thread = ix.thread_of_run.get(run) or (started_by.thread_id if started_by else None)
        mine = ix.run_events.get(run, [])
        started_at = started_by.ts if started_by and started_by.ts else (_ts(mine[0]) if mine else None)
        cron = ix.cron_run(run)
        if cron is not None:  # started by the scheduler, not when the cron was created
            started_at = _s(cron.body.get("created_at")) or (_ts(mine[0]) if mine else _ts(cron))
        if starter is None:
            gaps.append(Gap("missing_run_start", f"run {run}: no record names the request that started it"))
        elif starter not in ix.requests:
            gaps.append(Gap("missing_request", f"run {run}: the request {starter} that started it has no request record"))

        steps = self._steps(run, [r for r in mine if r.kind == "step"], started_at, gaps)

        interrupts: list[InterruptView] = []
        for r in mine:
            if r.kind != "interrupt":
                continue
            b = r.body
            interrupts.append(
                InterruptView(
                    ts=_ts(r), offset_ms=_ms_between(started_at, _ts(r)), node=_s(b.get("node")),
                    value=b.get("value"), request_id=_s(b.get("request_id")),
                    resumed_by=self.resume_link_after(thread, _ts(r)),
                    verified=self.verified(r), ref=self.use(r),
                )
            )
        errors = [
            ErrorView(
                ts=_ts(r), offset_ms=_ms_between(started_at, _ts(r)), error=r.body.get("error"),
                message=r.body.get("message"), request_id=_s(r.body.get("request_id")),
                verified=self.verified(r), ref=self.use(r),
            )
            for r in mine if r.kind == "error"
        ]
        resume_value: Any = None
        for r in mine:
            if r.kind == "resume":
                self.use(r)
                resume_value = r.body.get("value") if resume_value is None else resume_value
        if resume_value is None and started_by is not None:
            resume_value = started_by.resume
        resumed_from = None
        if resume_value is not None:
            resumed_from = self._interrupt_before(thread, started_at, run)

        # Requests the trail knows (by request or response record) that joined, read or
        # cancelled this run; ids seen only on steps (internal collection) are not requests.
        other_ids = [
            rid for rid in ix.requests_of_run.get(run, [])
            if rid != starter and (rid in ix.requests or rid in ix.responses)
        ]
        other_ids.sort(key=lambda rid: _sort_key(ix.requests[rid]) if rid in ix.requests else (0.0, "", 0))
        other_requests = [self.request_view(rid) for rid in other_ids]
        for rv in [started_by, *other_requests]:
            if rv is None:
                continue
            if rv.ref is not None and rv.response is None:
                gaps.append(Gap("missing_response", f"request {rv.request_id} has no response record"))
            if rv.approval_id is not None and rv.approval_id not in ix.approvals:
                gaps.append(Gap("missing_approval", f"request {rv.request_id} names approval {rv.approval_id} but the trail has no record of it"))

        outcome = self._outcome(run, starter, errors, interrupts) if cron is None else OutcomeView(
            status=None, outcome=None, run_status=_s(cron.body.get("run_status")), duration_ms=None,
            bytes_in=None, bytes_out=None, events=None, output=None,
            ended_at=_s(cron.body.get("updated_at")) or _ts(cron),
        )
        if outcome is not None and outcome.run_status is None and outcome.ended_at is None:
            outcome = None
        return RunView(
            run_id=run,
            thread_id=thread,
            assistant_id=started_by.assistant_id if started_by else None,
            started_at=started_at,
            started_by=started_by,
            approval_id=started_by.approval_id if started_by else None,
            input=started_by.input if started_by else None,
            resume=resume_value,
            resumed_from=resumed_from,
            steps=steps,
            interrupts=interrupts,
            errors=errors,
            outcome=outcome,
            other_requests=other_requests,
            gaps=gaps,
            cron_id=_s(cron.body.get("cron_id")) if cron is not None else None,
        )

    def _steps(self, run: str, recs: list[AuditRecord], started_at: str | None, gaps: list[Gap]) -> list[StepView]:
        def ns_of(r: AuditRecord) -> tuple[str, ...]:
            ns = r.body.get("namespace")
            return tuple(str(x) for x in ns) if isinstance(ns, list) else ()

        def num(r: AuditRecord) -> int | None:
            return _i(r.body.get("step"))

        def order(r: AuditRecord) -> tuple[int, float, str, int]:
            n = num(r)
            return (n if n is not None else 1 << 30, *_sort_key(r))

        def once(rs: list[AuditRecord]) -> list[AuditRecord]:
            # The same (namespace, step, node) seen twice by one source (the run's stream and a
            # join stream, or two history collections) is one step; the copies stay evidence.
            seen: set[tuple[tuple[str, ...], int | None, str | None]] = set()
            out: list[AuditRecord] = []
            for r in rs:
                key = (ns_of(r), num(r), _s(r.body.get("node")))
                if key in seen:
                    self.use(r)
                    continue
                seen.add(key)
                out.append(r)
            return out

        stream = once(sorted((r for r in recs if _s(r.body.get("source")) != "history"), key=order))
        history = once(sorted((r for r in recs if _s(r.body.get("source")) == "history"), key=order))
        # Pair the k-th run of a node in the stream with its k-th run in the history: stream
        # step numbers can be positions in the stream while history numbers are LangGraph
        # supersteps, so numbers alone do not match. A paired step shows the stream copy (what
        # the client saw) with the history's superstep number.
        by_node: dict[tuple[tuple[str, ...], str | None], list[AuditRecord]] = defaultdict(list)
        for r in history:
            by_node[(ns_of(r), _s(r.body.get("node")))].append(r)
        taken: dict[tuple[tuple[str, ...], str | None], int] = defaultdict(int)
        merged: list[tuple[int | None, AuditRecord, bool, bool]] = []
        for r in stream:
            key = (ns_of(r), _s(r.body.get("node")))
            k = taken[key]
            taken[key] += 1
            twins = by_node.get(key, [])
            if k < len(twins):
                h = twins[k]
                self.use(h)
                merged.append((num(h) if num(h) is not None else num(r), r, True, True))
            else:
                merged.append((num(r), r, True, False))
        for key, twins in by_node.items():
            for h in twins[taken.get(key, 0):]:
                merged.append((num(h), h, False, True))
                if stream:
                    gaps.append(
                        Gap(
                            "step_missing_from_stream",
                            f"run {run}: step {num(h)} ({key[1]}) is in the thread history but was not seen in the stream",
                        )
                    )
        merged.sort(key=lambda m: (m[0] if m[0] is not None else 1 << 30, *_sort_key(m[1])))

        views: list[StepView] = []
        prev_ts = started_at
        for step_no, r, in_stream, in_history in merged:
            b = r.body
            views.append(
                StepView(
                    step=step_no,
                    node=_s(b.get("node")),
                    namespace=list(ns_of(r)),
                    source=_s(b.get("source")),
                    ts=_ts(r),
                    offset_ms=_ms_between(started_at, _ts(r)),
                    delta_ms=_ms_between(prev_ts, _ts(r)),
                    data=b.get("data"),
                    request_id=_s(b.get("request_id")),
                    in_stream=in_stream,
                    in_history=in_history,
                    verified=self.verified(r),
                    ref=self.use(r),
                )
            )
            prev_ts = _ts(r)
        root = sorted({v.step for v in views if not v.namespace and v.step is not None})
        for a, b2 in zip(root, root[1:]):
            if b2 > a + 1:
                missing = ", ".join(str(n) for n in range(a + 1, b2))
                gaps.append(Gap("step_number_gap", f"run {run}: no record of step(s) {missing} between steps {a} and {b2}"))
        return views

    def _interrupt_before(self, thread: str | None, before: str | None, run: str) -> ResumeOrigin | None:
        t1 = parse_ts(before)
        best: AuditRecord | None = None
        for r in self.ix.by_kind["interrupt"]:
            if self.ix.thread_of(r) != thread or self.ix.run_of(r) == run:
                continue
            t = parse_ts(_ts(r))
            if t1 is not None and t is not None and t >= t1:
                continue
            best = r  # records are in time order: keep the latest before the resume
        if best is None:
            return None
        return ResumeOrigin(
            run_id=self.ix.run_of(best), node=_s(best.body.get("node")), ts=_ts(best),
            value=best.body.get("value"),
        )

    def _outcome(self, run: str, starter: str | None, errors: list[ErrorView], interrupts: list[InterruptView]) -> OutcomeView | None:
        resp = self.ix.responses.get(starter) if starter is not None else None
        run_status: str | None = _s(resp.body.get("run_status")) if resp is not None else None
        if run_status is None:
            # A background run's creating response precedes the run's end; a later response
            # for the same run (join, wait) may carry it.
            for rid in self.ix.requests_of_run.get(run, []):
                other = self.ix.responses.get(rid)
                if other is not None and _s(other.body.get("run_status")):
                    run_status = _s(other.body.get("run_status"))
        if resp is None:
            return OutcomeView(
                status=None, outcome=None, run_status=run_status, duration_ms=None,
                bytes_in=None, bytes_out=None, events=None, output=None, ended_at=None,
            )
        view = _response_view(resp)
        return OutcomeView(
            status=view.status, outcome=view.outcome, run_status=run_status,
            duration_ms=view.duration_ms, bytes_in=view.bytes_in, bytes_out=view.bytes_out,
            events=view.events, output=view.output, ended_at=view.ts,
        )


def _runs_of_thread(ix: _Index, thread: str) -> list[str]:
    runs = [run for run in ix.known_runs() if ix.thread_of_run.get(run) == thread]
    def start(run: str) -> tuple[float, str, int]:
        s = ix.starter_of(run)
        if s is not None and s in ix.requests:
            return _sort_key(ix.requests[s])
        recs = ix.run_events.get(run) or ix.run_records.get(run) or []
        return _sort_key(recs[0]) if recs else (0.0, "", 0)
    return sorted(runs, key=start)


def build_replay(
    records: Iterable[AuditRecord], verification: Verification, kind: QueryKind, ident: str
) -> Replay:
    """Rebuild the execution named by (`kind`, `ident`); raises `UnknownId` if nothing matches."""
    ix = _Index(records, verification)
    b = _Builder(ix)
    runs: list[RunView] = []
    loose: list[RequestView] = []
    if kind is QueryKind.RUN:
        if ident not in ix.known_runs():
            raise UnknownId(kind, ident)
        runs.append(b.run_view(ident))
    elif kind is QueryKind.THREAD:
        run_ids = _runs_of_thread(ix, ident)
        thread_requests = [rid for rid, r in ix.requests.items() if ix.thread_of(r) == ident]
        if not run_ids and not thread_requests:
            raise UnknownId(kind, ident)
        runs = [b.run_view(run) for run in run_ids]
        in_runs = {rv.request_id for run in runs for rv in [run.started_by, *run.other_requests] if rv}
        loose = [b.request_view(rid) for rid in thread_requests if rid not in in_runs]
    else:
        if ident not in ix.requests and ident not in ix.responses:
            raise UnknownId(kind, ident)
        run = ix.run_of_request.get(ident)
        if run is not None:
            runs.append(b.run_view(run))
        else:
            loose.append(b.request_view(ident))
    loose.sort(key=lambda rv: (rv.ts or ""))
    gaps: list[Gap] = []
    for rv in loose:
        if rv.ref is None:
            gaps.append(Gap("missing_request", f"response for request {rv.request_id} has no request record"))
        elif rv.response is None:
            gaps.append(Gap("missing_response", f"request {rv.request_id} has no response record"))
    for rid in ix.duplicate_requests:
        if any(rv.request_id == rid for rv in loose) or any(
            run.started_by and run.started_by.request_id == rid for run in runs
        ):
            gaps.append(Gap("duplicate_request", f"request {rid} was recorded more than once"))
    approvals: list[ApprovalView] = []
    for aid in list(b.approval_ids):
        view = b.approval_view(aid)
        if view is not None:
            approvals.append(view)
    unverified = sorted(
        f"{c}#{s}" for (c, s) in b.used_refs if not verification.covers(AuditRecord(c, s, "", "", {}))
    )
    if unverified and verification.status != "tampered":
        gaps.append(
            Gap("unverified_records", f"{len(unverified)} record(s) used by this replay lie outside the verified part of the chain")
        )
    return Replay(
        schema_version=SCHEMA_VERSION,
        query=QueryView(kind=kind.value, id=ident),
        verification=VerificationView(
            status=verification.status,
            message=verification.message,
            verified_through=dict(verification.verified_through),
            problems=list(verification.problems),
        ),
        runs=runs,
        requests=loose,
        approvals=approvals,
        gaps=gaps,
        unverified_refs=unverified,
    )


def select_records(
    records: Callable[[], Iterable[AuditRecord]], kind: QueryKind, ident: str
) -> list[AuditRecord]:
    """The records a replay of (`kind`, `ident`) needs, in two passes over the trail.

    `records` is called twice (e.g. `source.records`). The first pass keeps only the links
    (request -> run, thread, approval; run -> thread); the second keeps the records of the
    threads in scope, plus those of the runs, requests and approvals in scope that carry no
    thread. Memory then grows with the number of requests in the trail, not with its records
    and payloads. `build_replay` on the result equals `build_replay` on the whole trail.
    """
    req_run: dict[str, str] = {}
    req_thread: dict[str, str] = {}
    req_approval: dict[str, str] = {}
    run_thread: dict[str, str] = {}
    cron_origin: dict[str, str] = {}  # cron id -> the request that created it
    run_cron: dict[str, str] = {}  # run -> the cron whose scheduler started it
    for r in records():
        b = r.body
        rid, tid, run = _s(b.get("request_id")), _s(b.get("thread_id")), _s(b.get("run_id"))
        cid = _s(b.get("cron_id"))
        if cid is not None and r.kind == "cron" and rid is not None:
            cron_origin.setdefault(cid, rid)
        elif cid is not None and r.kind == "run" and run is not None and b.get("source") == "cron":
            run_cron[run] = cid
        if rid is not None and run is not None and r.kind != "approval":
            if r.kind == "run":
                req_run[rid] = run
            else:
                req_run.setdefault(rid, run)
        if rid is not None and tid is not None:
            req_thread.setdefault(rid, tid)
        if run is not None and tid is not None:
            run_thread.setdefault(run, tid)
        aid = _s(b.get("approval_id"))
        if r.kind == "request" and rid is not None and aid is not None:
            req_approval[rid] = aid

    def run_of(b: dict[str, Any]) -> str | None:
        run = _s(b.get("run_id"))
        rid = _s(b.get("request_id"))
        return run if run is not None else (req_run.get(rid) if rid is not None else None)

    def thread_of(b: dict[str, Any]) -> str | None:
        tid = _s(b.get("thread_id"))
        if tid is not None:
            return tid
        run = run_of(b)
        if run is not None and run in run_thread:
            return run_thread[run]
        rid = _s(b.get("request_id"))
        return req_thread.get(rid) if rid is not None else None

    threads: set[str] = set()
    runs: set[str] = set()
    requests: set[str] = set()
    if kind is QueryKind.THREAD:
        threads.add(ident)
    elif kind is QueryKind.RUN:
        runs.add(ident)
        if ident in run_thread:
            threads.add(run_thread[ident])
    else:
        requests.add(ident)
        run = req_run.get(ident)
        if run is not None:
            runs.add(run)
        tid = req_thread.get(ident) or (run_thread.get(run) if run is not None else None)
        if tid is not None:
            threads.add(tid)
    for rid, run in req_run.items():
        if run in runs:
            requests.add(rid)
    for rid, tid in req_thread.items():
        if tid in threads:
            requests.add(rid)
            if rid in req_run:
                runs.add(req_run[rid])
    # A cron's run was started by the request that created the cron (a stateless cron's
    # creation names no thread, so it is not in scope through one).
    requests |= {cron_origin[run_cron[run]] for run in runs if run_cron.get(run) in cron_origin}
    approvals = {req_approval[rid] for rid in requests if rid in req_approval}
    # Requests elsewhere that carried the same approval are listed as its attempts.
    requests |= {rid for rid, aid in req_approval.items() if aid in approvals}

    kept: list[AuditRecord] = []
    for r in records():
        b = r.body
        rid = _s(b.get("request_id"))
        if (
            thread_of(b) in threads
            or run_of(b) in runs
            or (rid is not None and rid in requests)
            or (r.kind == "approval" and _s(b.get("approval_id")) in approvals)
        ):
            kept.append(r)
    return kept
