"""Issue 7 end to end: the whole gateway (OIDC identity from a real provider, policy, approvals,
masking, audit) in front of the real `langgraph dev`, driven with the real langgraph-sdk.

Every test checks three places for leaks: what the client received (raw bytes), the audit
files on disk (raw bytes), and the gateway's own log output.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from langgraph_sdk import get_client
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.httpcall import call
from support.oidc import Provider

from graphwarden.assembly import Assembly
from graphwarden.audit._verify import read_records

pytestmark = pytest.mark.integration

# Values from the catalogue the test plants in inputs (the graph adds its own: an email in
# greet, an email and an SSN in explode's exception text).
EMAIL_IN = "alice.wong@example.net"
CARD = "4111 1111 1111 1111"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GH_TOKEN = "ghp_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8"
# structured: a secret under its key, a card number as a JSON number (run metadata)
AWS_SECRET = "ztu5jRJnKY3FFkX0LRfNR4AeGcBeTwTUy9jAdom/"
CARD_NUMBER = 4012888888881881
SSN_GRAPH = "123-45-6789"
EMAIL_GRAPH = "jane.doe@example.com"
EMAIL_ERROR = "john.smith@example.org"
EMAIL_COMMENT = "bob.approver@example.com"
SECRETS = [EMAIL_IN, CARD, AWS_KEY, GH_TOKEN, SSN_GRAPH, EMAIL_GRAPH, EMAIL_ERROR, EMAIL_COMMENT, AWS_SECRET,
           str(CARD_NUMBER)]

POLICY = """
version = 1

[[rules]]
id = "approvers-decide"
groups = ["approver"]
operations = ["gateway.approvals.list", "gateway.approvals.show", "gateway.approvals.approve", "gateway.approvals.deny"]
effect = "allow"

[[rules]]
id = "anyone-sees-own-approvals"
anyone = true
operations = ["gateway.approvals.list", "gateway.approvals.show"]
effect = "allow"

[[rules]]
id = "resume-needs-approval"
groups = ["user"]
resources = ["threads", "runs"]
when = { resume = true }
effect = "approval"
[rules.approval]
approver_groups = ["approver"]
mode = "hold"
hold_seconds = 60

[[rules]]
id = "users-run"
groups = ["user"]
resources = ["assistants", "threads", "runs", "crons", "store", "meta"]
effect = "allow"
"""


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.buf = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            fields = getattr(record, "fields", None)
            self.buf.write(msg + " " + json.dumps(fields, default=str) + "\n")
            if record.exc_info:
                self.buf.write(logging.Formatter().formatException(record.exc_info) + "\n")
        except Exception:  # noqa: BLE001
            pass


class World:
    def __init__(self, gw: GatewayHandle, provider: Provider, audit_dir: Path, upstream: str, assembly: Assembly,
                 logs: LogCapture) -> None:
        self.gw = gw
        self.provider = provider
        self.audit_dir = audit_dir
        self.upstream = upstream
        self.assembly = assembly
        self.logs = logs
        self.tag = uuid.uuid4().hex[:6]

    def token(self, who: str, groups: list[str]) -> str:
        return self.provider.login(f"{who}-{self.tag}", {"groups": groups, "name": who.title()})

    def client(self, token: str) -> Any:
        return get_client(url=self.gw.url, headers={"Authorization": f"Bearer {token}"})

    def sync(self) -> None:
        """Everything the gateway appended so far is in the files (batch mode stages records)."""
        assert self.assembly.audit.sync(10.0)

    def records(self, **match: str) -> list[tuple[str, dict[str, Any]]]:
        self.sync()
        out = []
        for r in read_records(self.audit_dir):
            body = r.json()
            if isinstance(body, dict) and all(body.get(k) == v for k, v in match.items()):
                out.append((r.kind, body))
        return out

    def audit_bytes(self) -> bytes:
        self.sync()
        return b"".join(p.read_bytes() for p in sorted(self.audit_dir.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def world(loop_thread: LoopThread, langgraph_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    provider = Provider()
    d = tmp_path_factory.mktemp("guarded")
    (d / "policy.toml").write_text(POLICY)
    config = make_config(
        langgraph_server,
        state={"dir": str(d)},
        upstream={"response_timeout_s": 120.0},
        identity={"oidc": [{"issuer": provider.issuer, "audience": ["graphwarden"], "groups_claim": "groups"}]},
        policy={"file": str(d / "policy.toml"), "rate_limits": {"requests_per_s": 1000, "burst": 1000}},
        audit={"durability": "batch", "batch_window_s": 0.01},
        evidence={"cron_poll_s": 1.0},
        logging={"access_log": True, "level": "debug"},
    )
    logs = LogCapture()
    root = logging.getLogger("graphwarden")
    root.addHandler(logs)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    assembly = Assembly(config)
    guard = assembly.build_guard(config)
    handle = start(loop_thread, config, guard, hooks=(assembly.install,))
    world = World(handle, provider, d / "audit", langgraph_server, assembly, logs)
    yield world
    handle.drain(2)
    root.removeHandler(logs)
    root.setLevel(old_level)
    provider.close()


def _no_secrets(where: str, data: bytes | str) -> None:
    blob = data.encode() if isinstance(data, str) else data
    for value in SECRETS:
        assert value.encode() not in blob, f"{value!r} leaked into {where}"


def _stream_raw(world: World, token: str, path: str, body: dict[str, Any]) -> bytes:
    with httpx.Client(timeout=60) as h:
        with h.stream("POST", world.gw.url + path, json=body,
                      headers={"Authorization": f"Bearer {token}", "accept": "text/event-stream"}) as r:
            assert r.status_code == 200, r.read()
            return b"".join(r.iter_raw())


def _events(raw: bytes) -> list[tuple[str, Any]]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = None, []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip())
        if name and data:
            out.append((name, json.loads(b"\n".join(data))))
    return out


def _history_steps(upstream: str, thread_id: str, run_id: str | None = None) -> set[tuple[str, int]]:
    """(node, step) of every executed task, from the server's own history (not via the gateway)."""
    r = httpx.post(f"{upstream}/threads/{thread_id}/history", json={"limit": 1000}, timeout=30)
    r.raise_for_status()
    steps = set()
    for cp in r.json():
        meta = cp["metadata"] or {}
        if run_id is not None and meta.get("run_id") != run_id:
            continue
        for task in cp.get("tasks") or []:
            if task["name"].startswith("__"):
                continue
            if task.get("result") is None and not task.get("error"):
                continue
            steps.add((task["name"], meta["step"] + 1))
    return steps


def _recorded_steps(world: World, run_id: str) -> set[tuple[str, int]]:
    """(node, superstep) of the completed steps the trail holds for a run. Stream records carry
    the task id; the superstep comes from the history record of the same task."""
    recs = [b for k, b in world.records(run_id=run_id) if k == "step"]
    steps_by_task = {b["task_id"]: b["step"] for b in recs if b.get("source") == "history"}
    out = set()
    for b in recs:
        if b.get("interrupted") or b.get("data") is None:
            continue
        step = b.get("step") if b.get("source") == "history" else steps_by_task.get(b["task_id"])
        if step is not None:
            out.add((b["node"], step))
    if not all(b["task_id"] in steps_by_task for b in recs if b.get("source") == "stream" and not b.get("interrupted")):
        return set()  # history records not written yet: every streamed task must get one
    return out


def _wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_streamed_run_is_masked_everywhere_and_every_step_recorded(world: World) -> None:
    token = world.token("alice", ["user"])
    status, _, thread = call(world.gw.url, "POST", "/threads", token=token, body={})
    assert status == 200
    tid = thread["thread_id"]
    talk = f"my github token is {GH_TOKEN} and my card {CARD}, bye"
    raw = _stream_raw(world, token, f"/threads/{tid}/runs/stream", {
        "assistant_id": "agent",
        "input": {"text": f"mail {EMAIL_IN} key {AWS_KEY}", "talk": talk, "chunks": 2},
        "metadata": {"aws_secret_access_key": AWS_SECRET, "card": CARD_NUMBER},
        "stream_mode": ["values", "updates", "messages-tuple", "custom", "events"],
    })
    _no_secrets("the client's SSE stream", raw)
    events = _events(raw)
    names = {n.split("|")[0] for n, _ in events}
    assert "tasks" not in names  # added by the gateway for the audit trail, removed for the client
    assert {"metadata", "values", "updates", "messages", "custom", "events"} <= names
    # token deltas: the reassembled text is the masked reply, whatever the split
    text = "".join(d[0]["content"] for n, d in events if n == "messages")
    assert text.startswith("my github token is ") and text.endswith(", bye")
    # the same deltas as LangChain callback events (`events` mode)
    calls = "".join(d["data"]["chunk"]["content"] for n, d in events
                    if n == "events" and d["event"] == "on_chat_model_stream")
    assert calls == text, (calls, text)
    run_id = next(d["run_id"] for n, d in events if n == "metadata")

    # The runtime itself received the masked input (request masking), and masked metadata: a
    # secret under its key and a card number sent as a number.
    state = httpx.get(f"{world.upstream}/threads/{tid}/state", timeout=10).json()
    assert EMAIL_IN not in json.dumps(state) and AWS_KEY not in json.dumps(state)
    run = httpx.get(f"{world.upstream}/threads/{tid}/runs/{run_id}", timeout=10).json()
    assert run["metadata"]["aws_secret_access_key"] == "[AWS_SECRET_KEY]" and run["metadata"]["card"] == "[CARD]", run

    # Every step the server's history shows is in the trail, with the run linked.
    assert _history_steps(world.upstream, tid, run_id)
    # history is read again on every try: the server may persist its last checkpoint after the
    # stream's final event, and the trail must then match the final history
    _wait_for(lambda: _recorded_steps(world, run_id) == _history_steps(world.upstream, tid, run_id))
    kinds = [k for k, _ in world.records(run_id=run_id)]
    assert "run" in kinds and "response" in kinds
    req = next(b for k, b in world.records(request_id=next(b["request_id"] for k, b in world.records(run_id=run_id) if k == "run")) if k == "request")
    assert req["principal"]["subject"] == f"alice-{world.tag}" and req["principal"]["auth_method"] == "oidc"
    assert req["decision"] == "allow" and req["rule"] == "users-run"
    assert req["injected_modes"] == ["tasks"]
    _no_secrets("the audit files", world.audit_bytes())


def test_sdk_streams_waits_and_background_runs_are_recorded(world: World) -> None:
    token = world.token("alice", ["user"])
    client = world.client(token)

    async def scenario() -> tuple[str, list[Any], dict[str, Any], dict[str, Any]]:
        thread = await client.threads.create()
        tid = thread["thread_id"]
        parts = [p async for p in client.runs.stream(tid, "agent", input={"text": f"hi {EMAIL_IN}", "chunks": 1},
                                                      stream_mode=["updates", "tasks"])]
        waited = await client.runs.wait(tid, "agent", input={"text": f"card {CARD}", "chunks": 1})
        background = await client.runs.create(tid, "agent", input={"text": "again", "chunks": 1})
        await client.runs.join(tid, background["run_id"])
        return tid, parts, waited, background

    tid, parts, waited, background = asyncio.run(scenario())
    _no_secrets("SDK stream parts", json.dumps([p.data for p in parts]))
    _no_secrets("runs.wait output", json.dumps(waited))
    # the client asked for tasks itself: it gets them (nothing injected, nothing removed)
    assert any(p.event == "tasks" for p in parts)
    runs = httpx.get(f"{world.upstream}/threads/{tid}/runs", timeout=10).json()
    for run in runs:
        rid = run["run_id"]
        assert _history_steps(world.upstream, tid, rid), rid
        assert _wait_for(lambda: _recorded_steps(world, rid) == _history_steps(world.upstream, tid, rid) or None), (
            rid, _recorded_steps(world, rid), _history_steps(world.upstream, tid, rid))
    sources = {b.get("source") for k, b in world.records(thread_id=tid) if k == "step"}
    assert sources == {"stream", "history"}
    _no_secrets("the audit files", world.audit_bytes())


def test_stateless_runs_are_recorded_and_their_threads_still_deleted(world: World) -> None:
    """Stateless runs (no thread of the client's): the server would delete their thread, history
    and all, as they end. The gateway has it kept, records the steps from the history, then
    deletes the thread itself."""
    token = world.token("stella", ["user"])
    client = world.client(token)
    run_input = {"text": f"card {CARD}", "chunks": 1}

    async def scenario() -> tuple[str, Any, list[Any], dict[str, Any]]:
        thread = await client.threads.create()  # a stateful run of the same input, for reference
        await client.runs.wait(thread["thread_id"], "agent", input=run_input)
        waited = await client.runs.wait(None, "agent", input=run_input)
        parts = [p async for p in client.runs.stream(None, "agent", input=run_input, stream_mode=["updates"])]
        background = await client.runs.create(None, "agent", input=run_input)
        batch = await client.runs.create_batch([{"assistant_id": "agent", "input": run_input}] * 2)
        return thread["thread_id"], waited, parts, background, batch

    ref_tid, waited, parts, background, batch = asyncio.run(scenario())
    _no_secrets("stateless outputs", json.dumps([waited, [p.data for p in parts]]))
    assert "graphwarden_request_id" not in json.dumps([p.data for p in parts if p.event != "metadata"])
    expected = _history_steps(world.upstream, ref_tid)
    assert expected
    subject = f"stella-{world.tag}"
    requests = {b["request_id"]: b for k, b in world.records() if k == "request"
                and (b.get("principal") or {}).get("subject") == subject
                and b["route"] in ("runs.wait", "runs.create", "runs.stream", "runs.batch")}
    assert len(requests) == 4 and all(b["thread_deleted_by_gateway"] for b in requests.values())
    runs = [(b["thread_id"], b["run_id"]) for k, b in world.records() if k == "response"
            and requests.get(b["request_id"], {}).get("route") == "runs.wait"]
    runs.append((background["thread_id"], background["run_id"]))
    # a stateless stream's answer names no thread: the gateway found it by its request tag
    stream_run = next(p.data["run_id"] for p in parts if p.event == "metadata")
    steps = _wait_for(lambda: [b for k, b in world.records(run_id=stream_run) if k == "step" and b["source"] == "history"])
    runs.append((steps[0]["thread_id"], stream_run))
    runs += [(r["thread_id"], r["run_id"]) for r in batch]
    assert len(runs) == 5 and all(tid and rid for tid, rid in runs), runs
    for tid, rid in runs:
        assert _wait_for(lambda: _recorded_steps(world, rid) == expected or None), (rid, _recorded_steps(world, rid))
        assert not [b for k, b in world.records(run_id=rid) if k == "gap"]
        # ...and the thread went, as it would have without the gateway
        _wait_for(lambda: httpx.get(f"{world.upstream}/threads/{tid}", timeout=10).status_code == 404)
    _no_secrets("the audit files", world.audit_bytes())


def _cron_run_replayed(world: World, rid: str) -> dict[str, Any]:
    """A cron run is on record once however many polls pass, with nothing unmasked; its replay."""
    polls = world.assembly.crons.polls
    _wait_for(lambda: world.assembly.crons.polls >= polls + 2)
    assert len([b for k, b in world.records(run_id=rid) if k == "run"]) == 1
    _no_secrets("the audit files", world.audit_bytes())
    code, out, err = _replay(world, "--run", rid, "--audit", str(world.audit_dir), "--format", "json")
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    return cast("dict[str, Any]", run)


def test_runs_a_cron_starts_on_a_thread_are_recorded(world: World) -> None:
    """Cron runs never pass through the gateway: the server's scheduler starts them. The
    gateway follows the cron's thread and records each run once, with its steps."""
    token = world.token("carl", ["user"])
    status, _, thread = call(world.gw.url, "POST", "/threads", token=token, body={})
    assert status == 200
    tid = thread["thread_id"]
    status, _, cron = call(world.gw.url, "POST", f"/threads/{tid}/runs/crons", token=token, body={
        "assistant_id": "agent", "schedule": "* * * * *", "input": {"text": f"cron {EMAIL_IN}", "chunks": 1}})
    assert status == 200, cron
    cron_id = cron["cron_id"]
    try:
        # the scheduler fires at the next minute (and wakes every 5 s)
        runs = _wait_for(lambda: [r for r in httpx.get(f"{world.upstream}/threads/{tid}/runs", timeout=10).json()
                                  if r["status"] == "success"] or None, timeout=120)
        rid = runs[0]["run_id"]
        recs = _wait_for(lambda: [b for k, b in world.records(run_id=rid) if k == "run"] or None, timeout=30)
        assert recs[0]["source"] == "cron" and recs[0]["cron_id"] == cron_id and recs[0]["run_status"] == "success"
        assert _wait_for(lambda: _recorded_steps(world, rid) == _history_steps(world.upstream, tid, rid) or None)
        run = _cron_run_replayed(world, rid)
        assert {(s["node"], s["step"]) for s in run["steps"]} == _history_steps(world.upstream, tid, rid)
        # who started it: the person who created the cron, through the `cron` record
        assert run["cron_id"] == cron_id and run["outcome"]["run_status"] == "success"
        assert run["started_by"]["principal"]["subject"] == f"carl-{world.tag}"
        assert run["started_by"]["route"] == "crons.create_for_thread" and run["started_by"]["decision"] == "allow"
        assert not [g for g in run["gaps"] if g["kind"] in ("missing_run_start", "missing_request")], run["gaps"]
        code, text, err = _replay(world, "--run", rid, "--audit", str(world.audit_dir), "--format", "text")
        assert code == 0 and f"for cron {cron_id}; the cron was created by:" in text, (err, text)
        page = world.audit_dir.parent / f"cron-{rid}.html"
        code, _, err = _replay(world, "--run", rid, "--audit", str(world.audit_dir), "--format", "html", "--out", str(page))
        assert code == 0 and f"scheduler for cron <span class=\"mono\">{cron_id}</span>" in page.read_text(), err
    finally:
        assert call(world.gw.url, "DELETE", f"/runs/crons/{cron_id}", token=token)[0] in (200, 204)


def test_runs_of_a_stateless_cron_are_recorded_and_their_threads_deleted(world: World) -> None:
    """A stateless cron gives each run a thread of its own, which the server would delete, history
    and all, as the run ends. Created through the gateway, the cron keeps them; the gateway
    records each run with its steps, then deletes the thread as the client asked."""
    token = world.token("stan", ["user"])
    run_input = {"text": f"stateless cron {EMAIL_IN}", "chunks": 1}
    status, _, thread = call(world.gw.url, "POST", "/threads", token=token, body={})
    assert status == 200  # a stateful run of the same input, for reference
    assert call(world.gw.url, "POST", f"/threads/{thread['thread_id']}/runs/wait", token=token,
                body={"assistant_id": "agent", "input": run_input})[0] == 200
    expected = _history_steps(world.upstream, thread["thread_id"])
    status, _, cron = call(world.gw.url, "POST", "/runs/crons", token=token, body={
        "assistant_id": "agent", "schedule": "* * * * *", "input": run_input})
    assert status == 200, cron
    cron_id = cron["cron_id"]
    assert cron["thread_id"] is None
    try:
        (req,) = [b for k, b in world.records() if k == "request" and b["route"] == "crons.create"
                  and (b.get("principal") or {}).get("subject") == f"stan-{world.tag}"]
        assert req["cron_threads_deleted_by_gateway"] is True
        # the scheduler fires at the next minute (and wakes every 5 s)
        recs = _wait_for(lambda: [b for k, b in world.records() if k == "run" and b.get("cron_id") == cron_id]
                         or None, timeout=150)
        run = recs[0]
        assert run["source"] == "cron" and run["run_status"] == "success" and run["thread_id"]
        rid, tid = run["run_id"], run["thread_id"]
        assert _wait_for(lambda: _recorded_steps(world, rid) == expected or None), (rid, _recorded_steps(world, rid))
        assert not [b for k, b in world.records(run_id=rid) if k == "gap"]
        # ...and the thread went, as it would have without the gateway
        _wait_for(lambda: httpx.get(f"{world.upstream}/threads/{tid}", timeout=10).status_code == 404)
        replayed = _cron_run_replayed(world, rid)
        assert {(s["node"], s["step"]) for s in replayed["steps"]} == expected
        assert replayed["cron_id"] == cron_id and replayed["started_by"]["route"] == "crons.create"
        assert replayed["started_by"]["principal"]["subject"] == f"stan-{world.tag}"
    finally:
        assert call(world.gw.url, "DELETE", f"/runs/crons/{cron_id}", token=token)[0] in (200, 204)


def test_failing_run_error_text_is_masked(world: World) -> None:
    token = world.token("alice", ["user"])
    status, _, thread = call(world.gw.url, "POST", "/threads", token=token, body={})
    raw = _stream_raw(world, token, f"/threads/{thread['thread_id']}/runs/stream",
                      {"assistant_id": "agent", "input": {"text": "x", "fail": True}, "stream_mode": ["updates"]})
    events = _events(raw)
    errors = [d for n, d in events if n == "error"]
    assert errors and "database write failed" in json.dumps(errors)
    _no_secrets("the error event", raw)
    run_id = next(d["run_id"] for n, d in events if n == "metadata")
    recs = world.records(run_id=run_id)
    assert any(k == "error" for k, _ in recs)
    resp = next(b for k, b in recs if k == "response")
    assert resp["run_status"] == "error"
    _no_secrets("the audit files", world.audit_bytes())


def test_interrupt_and_resume_after_approval_are_on_record(world: World) -> None:
    alice = world.token("alice", ["user"])
    bob = world.token("bob", ["approver"])
    status, _, thread = call(world.gw.url, "POST", "/threads", token=alice, body={})
    tid = thread["thread_id"]
    raw = _stream_raw(world, alice, f"/threads/{tid}/runs/stream",
                      {"assistant_id": "agent", "input": {"text": "please review", "pause": True}, "stream_mode": ["updates"]})
    first_run = next(d["run_id"] for n, d in _events(raw) if n == "metadata")
    assert any(k == "interrupt" for k, _ in world.records(run_id=first_run))

    result: dict[str, Any] = {}

    def resume() -> None:
        result["raw"] = _stream_raw(world, alice, f"/threads/{tid}/runs/stream", {
            "assistant_id": "agent", "command": {"resume": f"ok, reach me at {EMAIL_IN}"}, "stream_mode": ["updates"]})

    t = threading.Thread(target=resume)
    t.start()
    pending = _wait_for(lambda: [a for a in call(world.gw.url, "GET", "/_graphwarden/approvals", token=bob)[2]["approvals"]
                                 if a["state"] == "pending" and a["requester"] == f"alice-{world.tag}"] or None)
    aid = pending[0]["approval_id"]
    # the requester cannot approve their own request
    assert call(world.gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve", token=alice, body={"comment": "me"})[0] in (403, 404)
    status, _, decided = call(world.gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve", token=bob,
                              body={"comment": f"fine, cc {EMAIL_COMMENT}"})
    assert status == 200, decided
    t.join(60)
    assert "raw" in result
    _no_secrets("the resumed stream", result["raw"])
    second_run = next(d["run_id"] for n, d in _events(result["raw"]) if n == "metadata")
    # the resume request names its approval; the approval's transitions are recorded
    req = next(b for k, b in world.records(thread_id=tid) if k == "request" and b.get("resume"))
    assert req["approval_id"] == aid and req["rule"] == "resume-needs-approval"
    transitions = [b["transition"] for k, b in world.records(approval_id=aid) if k == "approval"]
    assert "requested" in transitions and "approved" in transitions and "used" in transitions
    approved = next(b for k, b in world.records(approval_id=aid) if k == "approval" and b["transition"] == "approved")
    assert approved["actor"]["subject"] == f"bob-{world.tag}"
    assert history_has_both(world, tid, first_run, second_run)
    _no_secrets("the audit files", world.audit_bytes())


def history_has_both(world: World, tid: str, first: str, second: str) -> bool:
    """Across the interrupted run and its resume, the trail holds exactly the thread's steps."""
    try:
        _wait_for(lambda: (_recorded_steps(world, first) | _recorded_steps(world, second)) == _history_steps(world.upstream, tid))
    except AssertionError:
        steps = _history_steps(world.upstream, tid)
        raise AssertionError((sorted(steps), sorted(_recorded_steps(world, first)), sorted(_recorded_steps(world, second)))) from None
    return True


def test_gateway_logs_hold_no_unmasked_values(world: World) -> None:
    # runs last in this module: everything above has been logged by now
    _no_secrets("the gateway's logs", world.logs.buf.getvalue())


def _replay(world: World, *args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    time.sleep(0.3)  # let the writer finish the frame it may be writing
    r = subprocess.run([sys.executable, "-m", "graphwarden", "replay", *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def test_replay_of_a_gateway_trail_lists_the_servers_steps(world: World, tmp_path: Path) -> None:
    token = world.token("alice", ["user"])
    status, _, thread = call(world.gw.url, "POST", "/threads", token=token, body={})
    tid = thread["thread_id"]
    raw = _stream_raw(world, token, f"/threads/{tid}/runs/stream",
                      {"assistant_id": "agent", "input": {"text": f"hi {EMAIL_IN}", "chunks": 2}, "stream_mode": ["values"]})
    run_id = next(d["run_id"] for n, d in _events(raw) if n == "metadata")
    _wait_for(lambda: _recorded_steps(world, run_id) == _history_steps(world.upstream, tid, run_id))
    history = _history_steps(world.upstream, tid, run_id)
    code, out, err = _replay(world, "--run", run_id, "--audit", str(world.audit_dir), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["verification"]["status"] in ("intact", "incomplete") and not doc["unverified_refs"]
    (run,) = doc["runs"]
    assert {(s["node"], s["step"]) for s in run["steps"]} == history
    assert run["started_by"]["principal"]["subject"] == f"alice-{world.tag}"
    assert run["started_by"]["decision"] == "allow"
    _no_secrets("the replay", out)
    # HTML and text render from the same trail
    html = tmp_path / "run.html"
    code, _, err = _replay(world, "--run", run_id, "--audit", str(world.audit_dir), "--format", "html", "--out", str(html))
    assert code == 0, err
    assert "greet" in html.read_text() and "http://" not in html.read_text().split("<body", 1)[1].replace("http://127.0.0.1", "")

    # a copy of the trail with one byte changed is refused, not replayed
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(world.audit_dir, copy)
    seg = max(copy.rglob("*.seg"), key=lambda p: p.stat().st_size)
    data = bytearray(seg.read_bytes())
    data[len(data) // 3] ^= 0x01
    seg.write_bytes(bytes(data))
    code, out, err = _replay(world, "--run", run_id, "--audit", str(copy), "--format", "json")
    assert code == 1 and out == "", (code, err)
    assert "tamper" in err.lower()
