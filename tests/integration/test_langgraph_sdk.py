"""The real langgraph-sdk client against a real `langgraph dev` server, through the gateway and
directly, on the project's deterministic graph."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client

from support.harness import GatewayHandle, LoopThread, make_config, start

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw(loop_thread: LoopThread, langgraph_server: str) -> Iterator[GatewayHandle]:
    handle = start(loop_thread, make_config(langgraph_server, upstream={"response_timeout_s": 60.0}))
    yield handle
    handle.drain(2)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def strip_volatile(obj: Any) -> Any:
    """Run ids, timestamps and thread ids differ between two executions; the shape must not."""
    volatile = {"run_id", "thread_id", "created_at", "updated_at", "checkpoint_id", "id", "langgraph_request_id",
                "parent_checkpoint_id", "checkpoint_ns", "x-request-id", "assistant_id", "user-agent", "host",
                "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "langgraph_checkpoint_ns",
                "checkpoint", "parent_checkpoint", "timestamp", "__request_start_time_ms__", "run_attempt", "task_id", "task_path", "checkpoint_map", "__pregel_task_id"}
    if isinstance(obj, dict):
        return {k: ("*" if k in volatile else strip_volatile(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


async def stream_parts(url: str, thread_id: str | None, **kw: Any) -> list[tuple[str, Any]]:
    client = get_client(url=url)
    out = []
    async for part in client.runs.stream(thread_id, "agent", **kw):
        out.append((part.event, part.data))
    return out


def test_assistants_threads_and_streamed_runs_match_direct(gw: GatewayHandle, langgraph_server: str) -> None:
    async def scenario(url: str) -> list[tuple[str, Any]]:
        client = get_client(url=url)
        assistants = await client.assistants.search(graph_id="agent")
        assert assistants and assistants[0]["graph_id"] == "agent"
        thread = await client.threads.create(metadata={"case": "stream"})
        parts = await stream_parts(
            url, thread["thread_id"], input={"text": "call me at +1 415 555 0100", "chunks": 3},
            stream_mode=["values", "updates", "custom", "messages-tuple", "tasks", "debug"],
        )
        return parts

    via_gw = run(scenario(gw.url))
    direct = run(scenario(langgraph_server))
    events = [e for e, _ in via_gw]
    assert events[0] == "metadata"
    for mode in ("values", "updates", "custom", "tasks", "debug"):
        assert mode in events, mode
    assert [e for e, _ in direct] == events
    assert strip_volatile([d for _, d in via_gw]) == strip_volatile([d for _, d in direct])
    customs = [d for e, d in via_gw if e == "custom"]
    assert [c["index"] for c in customs] == [0, 1, 2]


def test_wait_state_history_and_store(gw: GatewayHandle) -> None:
    async def scenario() -> None:
        client = get_client(url=gw.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        result = await client.runs.wait(tid, "agent", input={"text": "wait for me"})
        assert result["steps"] == ["greet", "tool", "review", "explode", "finish"]
        state = await client.threads.get_state(tid)
        assert state["values"]["messages"][-1] == "done"
        history = await client.threads.get_history(tid, limit=20)
        assert len(history) >= 5
        runs = await client.runs.list(tid)
        assert len(runs) == 1 and runs[0]["status"] == "success"
        await client.store.put_item(["users", "u1"], key="prefs", value={"theme": "dark"})
        item = await client.store.get_item(["users", "u1"], key="prefs")
        assert item["value"] == {"theme": "dark"}
        found = await client.store.search_items(["users"])
        assert any(i["key"] == "prefs" for i in found["items"])
        await client.store.delete_item(["users", "u1"], key="prefs")

    run(scenario())


def test_interrupt_and_resume_with_command(gw: GatewayHandle) -> None:
    async def scenario() -> None:
        client = get_client(url=gw.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        parts = await stream_parts(gw.url, tid, input={"text": "pay invoice", "pause": True}, stream_mode="updates")
        assert any(e == "updates" and "__interrupt__" in d for e, d in parts)
        state = await client.threads.get_state(tid)
        assert state["next"] == ["review"]
        t = await client.threads.get(tid)
        assert t["status"] == "interrupted"
        parts = await stream_parts(gw.url, tid, command={"resume": "approved"}, stream_mode="updates")
        nodes = [next(iter(d)) for e, d in parts if e == "updates"]
        assert nodes == ["review", "explode", "finish"]
        state = await client.threads.get_state(tid)
        assert state["values"]["approved"] == "approved"

    run(scenario())


def test_failing_node_streams_error_event(gw: GatewayHandle) -> None:
    async def scenario() -> None:
        client = get_client(url=gw.url)
        thread = await client.threads.create()
        parts = await stream_parts(gw.url, thread["thread_id"], input={"fail": True}, stream_mode="updates")
        errors = [d for e, d in parts if e == "error"]
        assert errors and "database write failed" in json.dumps(errors)

    run(scenario())


def test_join_stream_and_reconnect_with_last_event_id(gw: GatewayHandle) -> None:
    async def scenario() -> None:
        client = get_client(url=gw.url)
        thread = await client.threads.create()
        tid = thread["thread_id"]
        created = await client.runs.create(
            tid, "agent", input={"text": "background", "chunks": 40}, stream_mode=["updates", "custom"],
            stream_resumable=True,
        )
        rid = created["run_id"]
        seen = []
        async for part in client.runs.join_stream(tid, rid, last_event_id="-1"):
            seen.append(part)
        events = [p.event for p in seen]
        assert events[0] == "metadata" and "updates" in events and events.count("custom") == 40
        ids = [p.id for p in seen]
        assert all(ids), "resumable streams carry event ids"
        # Reconnect from the middle (an id that occurs once): exactly the later events come back.
        unique = [i for i in ids if ids.count(i) == 1]
        mid = unique[len(unique) // 2]
        again = []
        async for part in client.runs.join_stream(tid, rid, last_event_id=mid):
            again.append(part)
        assert [p.id for p in again] == ids[ids.index(mid) + 1 :]
        assert [p.data for p in again] == [p.data for p in seen[ids.index(mid) + 1 :]]

    run(scenario())


def test_get_responses_are_byte_identical_to_direct(gw: GatewayHandle, langgraph_server: str) -> None:
    async def make() -> str:
        client = get_client(url=langgraph_server)
        thread = await client.threads.create()
        await client.runs.wait(thread["thread_id"], "agent", input={"text": "bytes"})
        return str(thread["thread_id"])

    tid = run(make())
    for path in (f"/threads/{tid}", f"/threads/{tid}/state", "/info", f"/threads/{tid}/runs"):
        direct = urllib.request.urlopen(langgraph_server + path, timeout=10).read()
        proxied = urllib.request.urlopen(gw.url + path, timeout=10).read()
        assert proxied == direct, path


def test_sse_frames_pass_unchanged(gw: GatewayHandle, langgraph_server: str) -> None:
    """Raw frames through the gateway keep CRLF ends, event/data/id lines and Location headers."""
    body = json.dumps({"assistant_id": "agent", "input": {"text": "raw"}, "stream_mode": ["updates"]}).encode()
    req = urllib.request.Request(gw.url + "/runs/stream", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.headers.items()}
    assert headers["content-type"].startswith("text/event-stream")
    assert "content-location" in headers or "location" in headers
    assert raw.startswith(b"event: metadata\r\ndata: ")
    assert b"\r\n\r\nevent: updates\r\ndata: " in raw
