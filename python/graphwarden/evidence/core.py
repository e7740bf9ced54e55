"""Masking and audit in the request path (the gateway's `ExchangeHooks`).

For every request that reached the guard:

1. `body_limit`: bodies of routes that carry one are read whole (bounded by
   `limits.max_body_bytes`) so that they can be masked and recorded;
2. `on_decision`: the masked input, the principal, the route, the decision and its rule go into
   a `request` record; in strict durability a request with an unsafe method (or a refused one)
   waits until that record is on disk, and if it cannot be written the request is refused
   (503, fail closed). For admitted run streams
   the `tasks` stream mode is added when the client did not ask for it (so every step is seen);
   for routes whose masking policy says so the body sent upstream is the masked one;
3. `response_filter`: SSE streams through `RunStreamFilter`, JSON bodies are masked whole
   (valid JSON out), other bodies through the streaming byte masker; the audit copy is always
   masked with the full catalogue;
4. `before_end`: the `response` record is appended and, in strict mode, awaited before the last
   byte reaches the client;
5. `on_complete`: a `response` record for requests that ended otherwise (rejected, client gone,
   upstream failure); after runs without a stream (wait, background) their steps are collected
   from the thread's history.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson

from graphwarden.audit._bind import native
from graphwarden.errors import FAILURES, GatewayError
from graphwarden.evidence.streams import JsonMasker, RunStreamFilter, StreamMasker, native_splitter
from graphwarden.evidence.upstream import upstream_json
from graphwarden.guard import Admit, Decision, Operation, Principal, Reject, RequestInfo
from graphwarden.ops import get_logger

if TYPE_CHECKING:
    from graphwarden.gateway import BodyFilter, Exchange, Gateway

log = get_logger("evidence")

#: Run streams: the gateway adds the `tasks` mode to see every step.
STREAM_RUN_ROUTES = frozenset({"threads.stream_run", "runs.stream"})
#: Streams of runs that already exist: observed, nothing injected.
JOIN_STREAM_ROUTES = frozenset({"runs.join_stream", "threads.join_stream"})
#: Runs answered with their final state: steps come from the thread's history afterwards.
WAIT_RUN_ROUTES = frozenset({"threads.wait_run", "runs.wait"})
#: Background runs: the gateway joins the run and then reads the history.
BACKGROUND_RUN_ROUTES = frozenset({"threads.create_run", "runs.create"})
RUN_ROUTES = STREAM_RUN_ROUTES | WAIT_RUN_ROUTES | BACKGROUND_RUN_ROUTES | {"runs.batch"}
_BACKGROUND_OR_BATCH = BACKGROUND_RUN_ROUTES | {"runs.batch"}
#: Stateless runs: the server deletes their thread when they end (`on_completion = "delete"`,
#: the default), history and all. The gateway asks it to keep the thread, records the run's
#: steps from the history, then deletes the thread itself. A stateless stream's answer does not
#: name its thread: the gateway tags the run's metadata (which the server copies onto the new
#: thread) with the request id and finds the thread by it.
STATELESS_RUN_ROUTES = frozenset({"runs.wait", "runs.create", "runs.stream"})
#: The run-metadata key that lets the gateway find a stateless stream's thread.
REQUEST_TAG = "graphwarden_request_id"

#: Cron creation: a `cron` record links the cron to the request (and principal) that made it;
#: the runs the server's scheduler starts for it are recorded by evidence/crons.py.
CRON_CREATE_ROUTES = frozenset({"crons.create", "crons.create_for_thread"})
#: A stateless cron (`crons.create`, no thread) gives each run a thread of its own, which the
#: server deletes as the run ends unless the cron says `on_run_completed = "keep"`. The gateway
#: makes the cron keep them and tags the cron's metadata (which the server copies onto each
#: run's thread) with what the client asked for; evidence/crons.py finds the threads by the tag,
#: records their runs, and deletes the threads the client wanted deleted.
CRON_TAG = "graphwarden_cron_threads"

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Requests that change nothing upstream (RFC 9110 safe methods).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditAppender(Protocol):
    """What the request path needs from the audit log."""

    def append(self, kind: str, body: dict[str, Any], *, stamp: bool = False) -> int:
        """Append a record; `stamp`: add `"ts"` (now) when the body has none."""
        ...

    async def wait_durable(self, seq: int) -> None: ...

    # Optional: `append_dict(kind, body, stamp)` appends a plain dict body, raising TypeError
    # (nothing appended) for what it does not encode; `Evidence` then uses `append`.

    @property
    def strict(self) -> bool: ...


class AuditUnavailable(GatewayError):
    status = 503
    code = "audit_unavailable"


@dataclass(frozen=True, slots=True)
class MaskingDecision:
    requests: bool
    responses: bool


class MaskingPolicy:
    """Which directions are masked for a route class and a principal's groups (first rule wins)."""

    def __init__(self, rules: Sequence[tuple[Sequence[str], Sequence[str], bool, bool]], *,
                 default_requests: bool, default_responses: bool) -> None:
        self.rules = [(tuple(r), frozenset(g), q, s) for r, g, q, s in rules]
        self.default = MaskingDecision(default_requests, default_responses)
        self._cache: dict[tuple[str, tuple[str, ...]], MaskingDecision] = {}

    def decide(self, route: str, groups: Sequence[str]) -> MaskingDecision:
        key = (route, tuple(groups))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self.default
        for routes, rule_groups, req, resp in self.rules:
            if not any(fnmatch.fnmatchcase(route, pat) for pat in routes):
                continue
            if rule_groups and not rule_groups.intersection(groups):
                continue
            result = MaskingDecision(req, resp)
            break
        if len(self._cache) < 4096:
            self._cache[key] = result
        return result


#: UTC now as `datetime.isoformat(timespec="microseconds")` writes it (formatted natively).
#: Records appended through `Evidence.record` are stamped with it by the audit log itself.
now_iso: Callable[[], str] = native.now_iso


_PRINCIPALS: dict[Principal, dict[str, Any]] = {}
_NO_MODES: list[str] = []  # serialised only, never changed
_TASKS = frozenset({"tasks"})


_last_principal: tuple[Principal | None, dict[str, Any] | None] = (None, None)


def _principal(p: Principal | None) -> dict[str, Any] | None:
    """The principal as recorded (cached: the same caller makes many requests; the dict is
    only ever serialised, never changed). The last one is checked by identity first (it is
    held here, so its id cannot be reused): hashing a Principal runs Python code."""
    global _last_principal
    if p is None:
        return None
    last, last_dict = _last_principal
    if p is last:
        return last_dict
    hit = _PRINCIPALS.get(p)
    if hit is None:
        hit = {  # keys sorted (see `Evidence.on_decision`)
            "auth_method": p.auth_method, "display_name": p.display_name, "groups": list(p.groups),
            "subject": p.subject, "token_id": p.token_id,
        }
        if len(_PRINCIPALS) >= 4096:
            _PRINCIPALS.clear()
        _PRINCIPALS[p] = hit
    _last_principal = (p, hit)
    return hit


class Evidence:
    """The gateway's ExchangeHooks: masking by policy and the audit records of every request."""

    def __init__(
        self,
        *,
        audit: AuditAppender,
        masker: JsonMasker,
        policy: MaskingPolicy,
        max_body_bytes: int,
        json_buffer_bytes: int = 16 * 1024 * 1024,
        audit_level: str = "full",
        inject_stream_modes: bool = True,
        collect_history: bool = True,
        history_timeout_s: float = 600.0,
        digest: Callable[[bytes], str] | None = None,
    ) -> None:
        self.audit = audit
        self.masker = masker
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        self.json_buffer_bytes = json_buffer_bytes
        self.audit_level = audit_level
        self.inject = inject_stream_modes
        self.collect_history = collect_history
        self.history_timeout_s = history_timeout_s
        self._digest = digest or _blake3_hex
        self.gateway: Gateway | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._decisions: dict[str, Any] = {}
        # Two or three records per request: where the log offers it, its native dict encoder is
        # called directly (no Python frame in between).
        self._append_dict: Callable[[str, dict[str, Any], bool], int] = getattr(
            audit, "append_dict", None) or (lambda kind, body, stamp: audit.append(kind, body, stamp=stamp))

    def install(self, gateway: Gateway) -> None:
        self.gateway = gateway
        gateway.hooks = self

    # -- payloads -----------------------------------------------------------------------------
    def payload(self, masked: bytes) -> Any:
        """Masked JSON bytes as recorded: the document itself, or its digest."""
        if self.audit_level == "digest":
            return {"digest": self._digest(masked), "bytes": len(masked)}
        try:
            return orjson.loads(masked)
        except orjson.JSONDecodeError:
            return masked.decode("utf-8", "replace")

    def masked_payload(self, raw: bytes | None, is_json: bool = True) -> Any:
        if raw is None or raw == b"":
            return None
        if is_json:
            try:
                return self.payload(self.masker.mask_json(raw))
            except ValueError:
                pass
        masked = self.masker.mask(raw)
        if self.audit_level == "digest":
            return {"digest": self._digest(masked), "bytes": len(masked)}
        return masked.decode("utf-8", "replace")

    def masked_text(self, text: str | None) -> str | None:
        if text is None:
            return None
        return self.masker.mask(text.encode()).decode("utf-8", "replace")

    def note_decision(self, rec: Any) -> None:
        """Policy guard hook: keep the decision's rule and reason until `on_decision` runs."""
        self._decisions[rec.request_id] = rec
        if len(self._decisions) > 10_000:  # requests that never reached on_decision
            self._decisions.pop(next(iter(self._decisions)))

    def record(self, ex: Exchange, kind: str, body: dict[str, Any]) -> int:
        """Append a record of this exchange, stamped with `"ts"` (now) unless it has one."""
        try:
            try:
                seq = self._append_dict(kind, body, True)
            except TypeError:  # not natively encodable: the general path encodes it or says why
                seq = self.audit.append(kind, body, stamp=True)
        except Exception as exc:
            raise AuditUnavailable(f"the audit trail cannot be written ({exc}); request refused") from exc
        ex.notes["audit_seq"] = seq  # seqs only grow: the last one is the one to wait for
        return seq

    async def _durable(self, ex: Exchange) -> None:
        seq = ex.notes.get("audit_seq")
        if self.audit.strict and seq is not None:
            try:
                await self.audit.wait_durable(cast(int, seq))
            except GatewayError:
                raise
            except Exception as exc:
                raise AuditUnavailable(f"the audit trail is not durable ({exc}); request refused") from exc

    # -- hooks ----------------------------------------------------------------------------------
    def body_limit(self, ex: Exchange, op: Operation) -> int:
        if op.resource == "gateway":
            return 0
        return self.max_body_bytes if ex.method in BODY_METHODS else 0

    def on_decision(
        self, ex: Exchange, info: RequestInfo, decision: Decision, body: bytes | None
    ) -> bytes | Awaitable[bytes | None] | None:
        op = ex.operation
        assert op is not None
        principal = decision.principal
        masking = self.policy.decide(op.name, principal.groups if principal is not None else ())
        notes = ex.notes
        notes["masking"] = masking
        params = op.params  # serialised only, never changed
        admitted = isinstance(decision, Admit)
        # Keys in sorted order, here and in the other records of every request: the canonical
        # encoder sorts them, and input already in order costs its insertion sort least.
        rec: dict[str, Any] = {
            "action": op.action,
            "client_ip": ex.client_ip,
            "injected_modes": _NO_MODES,
            "input": None,
            "method": ex.method,
            "params": params,
            "path": ex.target.partition("?")[0],
            "principal": _principal(principal),
            "request_id": ex.request_id,
            "resource": op.resource,
            "route": op.name,
            "run_id": params.get("run_id"),
            "thread_id": params.get("thread_id"),
        }
        if isinstance(decision, Admit):
            # Allows are not noted by the guard (their rule travels on the Admit).
            rec["decision"] = rec["effect"] = "allow"
            rec["rule"] = decision.rule
            if decision.approval_id:
                rec["approval_id"] = decision.approval_id
        else:
            noted = self._decisions.pop(ex.request_id, None)
            if noted is not None:
                rec["rule"] = noted.rule
                rec["effect"] = noted.effect
            rec["decision"] = _reject_decision(decision)
            rec["status"] = decision.status
            rec["reason"] = decision.reason
            if decision.extra.get("approval_id"):
                rec["approval_id"] = decision.extra["approval_id"]
        new_body: bytes | None = None
        if body:
            new_body = self._request_body(ex, rec, op, body, admitted, masking)
        self.record(ex, "request", rec)
        if rec.get("resume") is not None:
            self.record(ex, "resume", {"request_id": ex.request_id, "thread_id": rec["thread_id"],
                                        "run_id": rec["run_id"], "value": rec["resume"]["value"]})
        forward = new_body if new_body is not None and new_body != body else None
        if self.audit.strict and (ex.method not in SAFE_METHODS or not admitted):
            # Strict: a request that can change something upstream is forwarded only once its
            # record is on disk. A read changes nothing: its response, released only once
            # every record of the exchange is on disk (before_end), is what must wait.
            return self._durable_then(ex, forward)
        return forward

    async def _durable_then(self, ex: Exchange, forward: bytes | None) -> bytes | None:
        await self._durable(ex)
        return forward

    def _request_body(self, ex: Exchange, rec: dict[str, Any], op: Operation, body: bytes, admitted: bool,
                      masking: MaskingDecision) -> bytes | None:
        """The request body's part of the record (masked input, assistant, resume value, stream
        modes); returns the body for the upstream when it changes (injected mode, masking)."""
        try:
            doc: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        new_body: bytes | None = None
        if isinstance(doc, dict):
            assistant = doc.get("assistant_id")
            if isinstance(assistant, str):
                rec["assistant_id"] = assistant
            command = doc.get("command")
            if isinstance(command, dict) and "resume" in command:
                rec["resume"] = {"value": self.masked_payload(orjson.dumps(command["resume"]))}
            changed = False
            if admitted and op.name in STREAM_RUN_ROUTES:
                modes = doc.get("stream_mode", ["values"])
                modes_list = [modes] if isinstance(modes, str) else list(modes) if isinstance(modes, list) else ["values"]
                rec["stream_mode"] = modes_list
                if self.inject and "tasks" not in modes_list:
                    doc["stream_mode"] = [*modes_list, "tasks"]
                    ex.notes["injected_modes"] = _TASKS
                    rec["injected_modes"] = ["tasks"]
                    changed = True
            meta = doc.get("metadata")
            if (admitted and op.name in STATELESS_RUN_ROUTES
                    and (op.name != "runs.stream" or meta is None or isinstance(meta, dict))
                    and self._keep_threads(ex, rec, [doc])):
                if op.name == "runs.stream":  # its answer names no thread: tagged, to be found
                    doc["metadata"] = {**(meta or {}), REQUEST_TAG: ex.request_id}
                changed = True
            if admitted and op.name == "crons.create" and self._keep_cron_threads(rec, doc):
                changed = True
            if changed:
                new_body = orjson.dumps(doc)
        elif isinstance(doc, list) and admitted and op.name == "runs.batch" and self._keep_threads(ex, rec, doc):
            new_body = orjson.dumps(doc)  # a batch of stateless background runs
        rec["input"] = self.masked_payload(body, True)
        if admitted and masking.requests and op.resource != "gateway":
            # The runtime receives the masked document (and the injected mode, if any).
            try:
                new_body = self.masker.mask_json(new_body if new_body is not None else body)
            except ValueError:
                new_body = self.masker.mask(new_body if new_body is not None else body)
        return new_body

    def _keep_threads(self, ex: Exchange, rec: dict[str, Any], runs: list[Any]) -> bool:
        """Stateless runs whose thread the server would delete keep it until their steps are
        recorded; the gateway deletes it then (STATELESS_RUN_ROUTES). False, and nothing
        changed, unless every run can."""
        if not (self.collect_history and runs and all(
                isinstance(r, dict) and r.get("on_completion", "delete") == "delete" for r in runs)):
            return False
        for r in runs:
            r["on_completion"] = "keep"
        ex.notes["delete_thread"] = True
        rec["thread_deleted_by_gateway"] = True
        return True

    def _keep_cron_threads(self, rec: dict[str, Any], doc: dict[str, Any]) -> bool:
        """A stateless cron keeps its runs' threads, tagged with the client's wish
        (CRON_TAG). False, and nothing changed, when the body is not one the server accepts."""
        wish = doc.get("on_run_completed", "delete")
        meta = doc.get("metadata")
        if not self.collect_history or wish not in ("delete", "keep") or not (meta is None or isinstance(meta, dict)):
            return False
        doc["on_run_completed"] = "keep"
        doc["metadata"] = {**(meta or {}), CRON_TAG: wish}
        rec["cron_threads_deleted_by_gateway"] = wish == "delete"
        return True

    def response_filter(
        self, ex: Exchange, status: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> BodyFilter | None:
        op = ex.operation
        assert op is not None
        masking: MaskingDecision = ex.notes.get("masking", self.policy.default)  # type: ignore[assignment]
        ctype = b""
        ctx: dict[str, Any] = {"request_id": ex.request_id}
        params = op.params
        if params:
            if params.get("thread_id"):
                ctx["thread_id"] = params["thread_id"]
            if params.get("run_id"):
                ctx["run_id"] = params["run_id"]
        for n, v in headers:
            if n == b"content-type":
                if not ctype:  # the first one, as h11 and clients read it
                    ctype = v.lower()
            elif n == b"content-location":  # /threads/{tid}/runs/{rid}
                parts = v.decode("latin-1").strip("/").split("/")
                if len(parts) >= 4 and parts[0] == "threads" and parts[2] == "runs":
                    ctx["thread_id"], ctx["run_id"] = parts[1], parts[3]
                elif len(parts) >= 2 and parts[0] == "runs":
                    ctx["run_id"] = parts[1]
        ex.notes["ctx"] = ctx
        if ctype.startswith(b"text/event-stream"):
            filt = RunStreamFilter(
                client_mask=self.masker if masking.responses else None,
                audit_mask=self.masker,
                record=lambda kind, body: self._stream_record(ex, kind, body),
                injected_modes=ex.notes.get("injected_modes", frozenset()),  # type: ignore[arg-type]
                context=ctx,
                payload=self.payload,
                native_splitter=native_splitter,
            )
            ex.notes["stream"] = filt
            return filt
        json_body = ctype.startswith(b"application/json") or b"+json" in ctype
        return CaptureFilter(self, ex, json_body, mask_client=masking.responses)

    def _stream_record(self, ex: Exchange, kind: str, body: dict[str, Any]) -> None:
        self.record(ex, kind, body)
        if kind == "run":
            ctx = ex.notes.get("ctx")
            if isinstance(ctx, dict):
                ctx["run_id"] = body.get("run_id")

    def before_end(self, ex: Exchange) -> Awaitable[None] | None:
        self._response_record(ex)
        if self.audit.strict:
            return self._durable(ex)
        return None  # batch: nothing to wait for (and no coroutine to make per request)

    def on_complete(self, ex: Exchange) -> None:
        if not ex.notes.get("response_recorded"):
            try:
                self._response_record(ex)
            except GatewayError:
                log.error("audit record for a finished request could not be written",
                          extra={"fields": {"request_id": ex.request_id}})
        op = ex.operation
        if op is None or op.name not in RUN_ROUTES:
            return  # no run's steps to collect (most requests: decided before anything else)
        delete = bool(ex.notes.get("delete_thread"))
        if not (self.collect_history and self.gateway is not None and 200 <= ex.status < 300):
            return
        task_ids: list[str] = []
        runs = cast("list[tuple[str | None, str | None]]", ex.notes.get("runs") or [])
        join = op.name in BACKGROUND_RUN_ROUTES or op.name == "runs.batch"
        if op.name in STREAM_RUN_ROUTES:
            stream = ex.notes.get("stream")
            if isinstance(stream, RunStreamFilter):
                runs = [(stream.ctx.get("thread_id"), stream.ctx.get("run_id"))]
                task_ids = stream.task_ids
                join = ex.outcome != "ok"  # the client left early: wait for the run to end
        elif op.name in WAIT_RUN_ROUTES:
            if not runs:  # the client left before the answer: its ids came with the head
                ctx = cast("dict[str, Any]", ex.notes.get("ctx") or {})
                runs = [(ctx.get("thread_id"), ctx.get("run_id"))]
            join = ex.outcome != "ok"
        elif op.name not in _BACKGROUND_OR_BATCH:
            return
        for thread_id, run_id in runs:
            if delete and run_id and not thread_id and op.name == "runs.stream":
                self._spawn(self._collect_tagged(ex.request_id, run_id, task_ids))
            elif thread_id and run_id:
                # a thread about to be deleted: only once its run has ended
                self._spawn(self._collect(ex.request_id, thread_id, run_id, join=join or delete, task_ids=task_ids,
                                          delete_thread=delete))
            elif delete:
                log.warning("a stateless run's thread is unknown: it is kept by the server",
                            extra={"fields": {"request_id": ex.request_id, "thread_id": thread_id, "run_id": run_id}})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run after the exchange, kept referenced until done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _response_record(self, ex: Exchange) -> None:
        ex.notes["response_recorded"] = True
        ctx: dict[str, Any] = ex.notes.get("ctx") or {}  # type: ignore[assignment]
        stream = ex.notes.get("stream")
        rec: dict[str, Any] = {  # keys sorted (see `on_decision`)
            "bytes_in": ex.bytes_in,
            "bytes_out": ex.bytes_out,
            # milliseconds to 3 decimals (an int over 1000 prints as such; round() is slower)
            "duration_ms": int((ex.duration_s or 0.0) * 1_000_000 + 0.5) / 1000,
            "outcome": ex.outcome,
            "request_id": ex.request_id,
            "run_id": ctx.get("run_id"),
            "status": ex.status,
            "thread_id": ctx.get("thread_id"),
        }
        if isinstance(stream, RunStreamFilter):
            rec["events"] = stream.events
            rec["run_status"] = stream.run_status or ("success" if ex.outcome == "ok" else None)
            rec["thread_id"] = stream.ctx.get("thread_id", rec["thread_id"])
            rec["run_id"] = stream.ctx.get("run_id", rec["run_id"])
        elif "output" in ex.notes:
            rec["output"] = ex.notes["output"]
            if ex.notes.get("run_status"):
                rec["run_status"] = ex.notes["run_status"]
        self.record(ex, "response", rec)

    # -- history --------------------------------------------------------------------------------
    async def _collect(self, request_id: str, thread_id: str, run_id: str, *, join: bool,
                       task_ids: Sequence[str] = (), delete_thread: bool = False) -> None:
        try:
            await self.collect_steps(request_id, thread_id, run_id, join=join, task_ids=task_ids)
        finally:
            if delete_thread:
                await self.delete_thread(request_id, thread_id)

    async def _collect_tagged(self, request_id: str, run_id: str, task_ids: Sequence[str]) -> None:
        """A stateless stream's run: find its thread by the request tag, then as `_collect`."""
        gw = self.gateway
        assert gw is not None
        try:
            status, found = await upstream_json(gw, "POST", "/threads/search",
                                                {"metadata": {REQUEST_TAG: request_id}, "limit": 2}, timeout_s=30.0)
            if status != 200 or not isinstance(found, list) or len(found) != 1 or not isinstance(found[0], dict):
                raise RuntimeError(f"thread search answered {status} with {len(found) if isinstance(found, list) else 'no'} threads")
            thread_id = str(found[0]["thread_id"])
        except Exception as exc:
            log.warning("could not find a stateless stream's thread: it is kept by the server",
                        extra={"fields": {"request_id": request_id, "run_id": run_id, "error": str(exc)}})
            self._gap(request_id, None, run_id, f"steps not collected: thread not found ({exc})")
            return
        await self._collect(request_id, thread_id, run_id, join=True, task_ids=task_ids, delete_thread=True)

    async def delete_thread(self, request_id: str | None, thread_id: str) -> None:
        """What the server would have done at the end of a stateless run (`on_completion =
        "delete"`), done once the run's steps are on record."""
        gw = self.gateway
        assert gw is not None
        try:
            status, _ = await upstream_json(gw, "DELETE", f"/threads/{thread_id}", timeout_s=60.0)
            if status not in (200, 202, 204, 404):
                raise RuntimeError(f"DELETE answered {status}")
        except Exception as exc:
            log.warning("could not delete a stateless run's thread",
                        extra={"fields": {"request_id": request_id, "thread_id": thread_id, "error": str(exc)}})

    async def collect_steps(self, request_id: str | None, thread_id: str, run_id: str, *, join: bool,
                            task_ids: Sequence[str] = ()) -> None:
        """Record a run's steps from its thread's history (after joining it, if `join`); a
        `gap` record if that fails."""
        gw = self.gateway
        assert gw is not None
        try:
            if join:
                await upstream_json(gw, "GET", f"/threads/{thread_id}/runs/{run_id}/join",
                                    timeout_s=self.history_timeout_s)
            status, history = await upstream_json(
                gw, "POST", f"/threads/{thread_id}/history", {"limit": 1000}, timeout_s=60.0
            )
            if status != 200 or not isinstance(history, list):
                raise RuntimeError(f"history answered {status}")
            for step in steps_from_history(history, run_id, task_ids):
                body = {"request_id": request_id, "thread_id": thread_id, "run_id": run_id, "ts": now_iso(),
                        "source": "history", **step}
                body["data"] = self.masked_payload(orjson.dumps(body["data"]))
                if "interrupts" in body:
                    body["interrupts"] = self.masked_payload(orjson.dumps(body["interrupts"]))
                if body.get("error") is not None:
                    body["error"] = self.masked_payload(orjson.dumps(body["error"]))
                self.audit.append("step", body)
        except FAILURES as exc:
            log.warning("could not collect run steps from history",
                        extra={"fields": {"thread_id": thread_id, "run_id": run_id, "error": str(exc)}})
            self._gap(request_id, thread_id, run_id, f"steps not collected: {exc}")

    def _gap(self, request_id: str | None, thread_id: str | None, run_id: str, reason: str) -> None:
        """A `gap` record: the trail says what it could not see (never fails the caller)."""
        try:
            self.audit.append("gap", {"request_id": request_id, "thread_id": thread_id, "run_id": run_id,
                                      "ts": now_iso(), "reason": reason})
        except Exception:
            log.exception("audit append failed")

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()


def steps_from_history(history: list[Any], run_id: str, task_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The steps a run executed, from `POST /threads/{id}/history` (newest first).

    A checkpoint at step s lists the tasks of superstep s + 1 with their results. A run owns the
    checkpoints carrying its run_id; a run that resumed an interrupt also executed the pending
    tasks of the checkpoint just before its first one (written by the interrupted run), and a
    streamed run names its tasks by id (`task_ids`)."""
    chronological = list(reversed(history))
    wanted = set(task_ids)
    first = next((i for i, cp in enumerate(chronological) if (cp.get("metadata") or {}).get("run_id") == run_id), None)
    out: list[dict[str, Any]] = []
    for i, cp in enumerate(chronological):
        meta = cp.get("metadata") or {}
        owned = meta.get("run_id") == run_id
        before = first is not None and i == first - 1
        step = meta.get("step")
        for task in cp.get("tasks") or []:
            name = str(task.get("name"))
            if name.startswith("__"):
                continue
            tid = str(task.get("id"))
            if not (owned or tid in wanted or (before and task.get("result") is not None)):
                continue
            if task.get("result") is None and not task.get("interrupts") and not task.get("error"):
                continue  # not executed (yet)
            entry: dict[str, Any] = {
                "node": name,
                "task_id": tid,
                "step": step + 1 if isinstance(step, int) else None,
                "namespace": [],
                "data": task.get("result"),
                "interrupted": bool(task.get("interrupts")) and task.get("result") is None,
            }
            if task.get("interrupts"):
                entry["interrupts"] = task["interrupts"]
            if task.get("error"):
                entry["error"] = task["error"]
            out.append(entry)
    return out


def _reject_decision(r: Reject) -> str:
    code = r.code
    if code in ("approval_pending", "approval_denied", "approval_expired", "unauthenticated", "rate_limited"):
        return code
    if r.status == 401:
        return "unauthenticated"
    if r.status == 429:
        return "rate_limited"
    return "deny"


def _blake3_hex(data: bytes) -> str:
    from graphwarden import _native

    return _native.blake3_hex(data)


class CaptureFilter:
    """Non-SSE responses: JSON masked whole (up to `json_buffer_bytes`, then as a byte stream);
    other bodies through the streaming byte masker. Records the masked output."""

    def __init__(self, ev: Evidence, ex: Exchange, is_json: bool, *, mask_client: bool) -> None:
        self.ev = ev
        self.ex = ex
        self.is_json = is_json
        self.mask_client = mask_client
        self.parts: list[bytes] = []
        self.size = 0
        self.stream: StreamMasker | None = None if is_json else ev.masker.stream()
        self.audit_stream: StreamMasker | None = None
        #: JSON up to this size is handed over whole (see gateway.WholeBodyFilter).
        self.whole_body_limit = ev.json_buffer_bytes if is_json else 0

    def whole(self, body: bytes) -> bytes:
        if not body:
            return b""
        return self._finish_whole(body)

    def feed(self, chunk: bytes) -> bytes:
        if self.stream is not None:
            masked = self.stream.feed(chunk)
            self._audit_bytes(chunk, masked)
            return masked if self.mask_client else chunk
        self.parts.append(chunk)
        self.size += len(chunk)
        if self.size > self.ev.json_buffer_bytes:
            # Too large to hold: fall back to the byte-stream masker (never unmasked).
            self.stream = self.ev.masker.stream()
            data = b"".join(self.parts)
            self.parts = []
            masked = self.stream.feed(data)
            self._audit_bytes(data, masked)
            return masked if self.mask_client else data
        return b""

    def _audit_bytes(self, raw: bytes, masked: bytes) -> None:
        self.ex.notes["output_bytes"] = int(self.ex.notes.get("output_bytes", 0)) + len(masked)  # type: ignore[call-overload]

    def finish(self) -> bytes:
        if self.stream is not None:
            tail = self.stream.finish()
            self.ex.notes["output"] = {"bytes": int(self.ex.notes.get("output_bytes", 0)) + len(tail),  # type: ignore[call-overload]
                                       "streamed": True}
            return tail if self.mask_client else b""
        body = b"".join(self.parts)
        if not body:
            return b""
        return self._finish_whole(body)

    def _finish_whole(self, body: bytes) -> bytes:
        masked: bytes
        try:
            masked = self.ev.masker.mask_json(body) if self.is_json else self.ev.masker.mask(body)
        except ValueError:
            masked = self.ev.masker.mask(body)
        self.ex.notes["output"] = self.ev.payload(masked)
        self._learn_runs(body)
        if self.is_json and self.ex.operation is not None and self.ex.operation.name in CRON_CREATE_ROUTES:
            self._learn_cron(body)
        return masked if self.mask_client else body

    def _learn_cron(self, body: bytes) -> None:
        if not 200 <= self.ex.status < 300:
            return
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(doc, dict) or not doc.get("cron_id"):
            return
        try:
            self.ev.record(self.ex, "cron", {
                "request_id": self.ex.request_id, "cron_id": str(doc["cron_id"]),
                "thread_id": doc.get("thread_id"), "run_id": None,
                "schedule": self.ev.masked_text(doc["schedule"]) if isinstance(doc.get("schedule"), str) else None,
                "assistant_id": doc.get("assistant_id"),
            })
        except GatewayError:
            pass

    def _learn_runs(self, body: bytes) -> None:
        op = self.ex.operation
        if op is None or op.name not in RUN_ROUTES or not self.is_json:
            return
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        runs: list[tuple[str | None, str | None]] = []
        if op.name in WAIT_RUN_ROUTES:
            ctx = cast("dict[str, Any]", self.ex.notes.get("ctx") or {})
            runs.append((ctx.get("thread_id") or op.params.get("thread_id"), ctx.get("run_id")))
            if isinstance(doc, dict) and "__error__" in doc:
                self.ex.notes["run_status"] = "error"
        else:
            items = doc if isinstance(doc, list) else [doc]
            for item in items:
                if isinstance(item, dict) and item.get("run_id"):
                    runs.append((item.get("thread_id"), item.get("run_id")))
                    try:
                        self.ev.record(self.ex, "run", {"request_id": self.ex.request_id,
                                                        "thread_id": item.get("thread_id"), "run_id": item.get("run_id"),
                                                        "assistant_id": item.get("assistant_id")})
                    except GatewayError:
                        pass
        self.ex.notes["runs"] = runs


__all__ = ["Evidence", "MaskingPolicy", "steps_from_history"]
