"""Owner isolation against the real server: the real langgraph-sdk drives `langgraph dev`
through the gateway for several principals (service API keys) and nothing of one user's
threads, runs, crons, assistants or store namespaces is visible or reachable by another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import APIStatusError
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.httpcall import call

from graphwarden.identity.keys import KeyStore
from graphwarden.policy.guard import build_guard

pytestmark = pytest.mark.integration

RUN_INPUT = {"text": "hello", "chunks": 1}


class World:
    def __init__(self, gw: GatewayHandle, keys: dict[str, str], names: dict[str, str]) -> None:
        self.gw = gw
        self.keys = keys
        self.names = names

    def client(self, who: str) -> Any:
        return get_client(url=self.gw.url, api_key=self.keys[who])


@pytest.fixture(scope="module")
def world(loop_thread: LoopThread, langgraph_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = tmp_path_factory.mktemp("iso")
    store = KeyStore.for_state_dir(d)
    tag = uuid.uuid4().hex[:6]
    names = {"alice": f"alice-{tag}", "bob": f"bob-{tag}", "audrey": f"audrey-{tag}", "root": f"root-{tag}"}
    groups = {"alice": ("user",), "bob": ("user",), "audrey": ("auditor",), "root": ("admin",)}
    keys = {who: store.create(names[who], groups[who])[0] for who in names}
    config = make_config(langgraph_server, state={"dir": str(d)}, upstream={"response_timeout_s": 60.0},
                         policy={"rate_limits": {"requests_per_s": 1000, "burst": 1000}})
    handle = start(loop_thread, config, build_guard(config, key_store=store))
    yield World(handle, keys, names)
    handle.drain(2)


def run(coro: Awaitable[Any]) -> Any:
    async def wrapped() -> Any:
        return await coro
    return asyncio.run(wrapped())


async def status_of(fn: Callable[[], Awaitable[Any]]) -> int:
    try:
        result = fn()
        if not hasattr(result, "__aiter__"):
            result = await result
        if hasattr(result, "__aiter__"):
            async for _ in result:  # streams
                pass
    except APIStatusError as exc:
        return int(exc.status_code)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return 200


def test_other_users_threads_are_invisible_and_untouchable(world: World) -> None:
    async def scenario() -> None:
        alice, bob = world.client("alice"), world.client("bob")
        thread = await alice.threads.create(metadata={"topic": "secret", "graphwarden_owner": world.names["bob"]})
        tid = thread["thread_id"]
        assert thread["metadata"]["graphwarden_owner"] == world.names["alice"]  # the client cannot choose
        result = await alice.runs.wait(tid, "agent", input=RUN_INPUT)
        assert result["messages"]
        runs = await alice.runs.list(tid)
        rid = runs[0]["run_id"]
        bob_thread = await bob.threads.create()

        # Alice sees her own; searches and counts from Bob never include it.
        assert tid in [t["thread_id"] for t in await alice.threads.search(limit=100)]
        found = await bob.threads.search(limit=100, metadata={"topic": "secret"})
        assert found == []
        ids = [t["thread_id"] for t in await bob.threads.search(limit=100)]
        assert tid not in ids and bob_thread["thread_id"] in ids
        assert await bob.threads.count() == 1
        assert await bob.threads.count(metadata={"graphwarden_owner": world.names["alice"]}) == 1  # own filter forced

        # Every thread-scoped route answers 404 to Bob, exactly as for a missing thread.
        attempts: dict[str, Callable[[], Any]] = {
            "get": lambda: bob.threads.get(tid),
            "update": lambda: bob.threads.update(tid, metadata={"graphwarden_owner": world.names["bob"]}),
            "delete": lambda: bob.threads.delete(tid),
            "get_state": lambda: bob.threads.get_state(tid),
            "update_state": lambda: bob.threads.update_state(tid, {"text": "x"}),
            "history": lambda: bob.threads.get_history(tid),
            "copy": lambda: bob.threads.copy(tid),
            "runs.create": lambda: bob.runs.create(tid, "agent", input=RUN_INPUT),
            "runs.wait": lambda: bob.runs.wait(tid, "agent", input=RUN_INPUT),
            "runs.stream": lambda: bob.runs.stream(tid, "agent", input=RUN_INPUT),
            "runs.list": lambda: bob.runs.list(tid),
            "runs.get": lambda: bob.runs.get(tid, rid),
            "runs.join": lambda: bob.runs.join(tid, rid),
            "runs.join_stream": lambda: bob.runs.join_stream(tid, rid),
            "runs.cancel": lambda: bob.runs.cancel(tid, rid),
            "runs.delete": lambda: bob.runs.delete(tid, rid),
            "threads.join_stream": lambda: bob.threads.join_stream(tid),
            "crons.create_for_thread": lambda: bob.crons.create_for_thread(tid, "agent", schedule="0 0 * * *"),
        }
        for name, attempt in attempts.items():
            assert await status_of(attempt) == 404, name
        # Reusing Alice's id for a new thread is refused, not merged.
        assert await status_of(lambda: bob.threads.create(thread_id=tid, if_exists="do_nothing")) == 409
        # Alice's thread is untouched.
        again = await alice.threads.get(tid)
        assert again["metadata"]["topic"] == "secret"
        assert len(await alice.runs.list(tid)) == 1

    run(scenario())


def test_raw_routes_bulk_operations_and_v2_commands(world: World) -> None:
    alice_key, bob_key = world.keys["alice"], world.keys["bob"]
    url = world.gw.url
    st, _, thread = call(url, "POST", "/threads", body={}, headers={"x-api-key": alice_key})
    assert st == 200
    tid = thread["thread_id"]
    bob = {"x-api-key": bob_key}
    assert call(url, "POST", f"/threads/{tid}/commands", body={"id": 1, "method": "run.start", "params": {}}, headers=bob)[0] == 404
    assert call(url, "POST", f"/threads/{tid}/stream/events", body={}, headers=bob)[0] == 404
    assert call(url, "POST", f"/threads/{tid}/history", body={}, headers=bob)[0] == 404
    assert call(url, "POST", f"/threads/{tid}/state/checkpoint", body={}, headers=bob)[0] == 404
    assert call(url, "POST", "/runs/cancel", body={"thread_id": tid, "run_ids": []}, headers=bob)[0] == 404
    st, _, err = call(url, "POST", "/runs/cancel", body={"status": "all"}, headers=bob)
    assert st == 403 and "cross-owner" in err["reason"]
    st, _, err = call(url, "POST", "/threads/prune", body={"thread_ids": [tid]}, headers=bob)
    assert st == 403
    # A stateless run naming Alice's thread, or keeping its own thread, is refused.
    assert call(url, "POST", "/runs/wait", body={"assistant_id": "agent", "thread_id": tid, "input": RUN_INPUT}, headers=bob)[0] == 404
    assert call(url, "POST", "/runs/wait", body={"assistant_id": "agent", "input": RUN_INPUT, "on_completion": "keep"}, headers=bob)[0] == 403
    st, _, out = call(url, "POST", "/runs/wait", body={"assistant_id": "agent", "input": RUN_INPUT}, headers=bob)
    assert st == 200 and out["messages"]
    # The thread is still Alice's and still there.
    assert call(url, "GET", f"/threads/{tid}", headers={"x-api-key": alice_key})[0] == 200


def test_auditor_reads_everything_and_changes_nothing_admin_does_all(world: World) -> None:
    async def scenario() -> None:
        alice, audrey, root = world.client("alice"), world.client("audrey"), world.client("root")
        tid = (await alice.threads.create(metadata={"case": "audit"}))["thread_id"]
        assert (await audrey.threads.get(tid))["thread_id"] == tid
        ids = [t["thread_id"] for t in await audrey.threads.search(limit=1000, metadata={"case": "audit"})]
        assert tid in ids
        assert await status_of(lambda: audrey.threads.update(tid, metadata={"x": 1})) == 403
        assert await status_of(lambda: audrey.runs.create(tid, "agent", input=RUN_INPUT)) == 403
        assert await status_of(lambda: audrey.threads.delete(tid)) == 403
        assert (await root.threads.get(tid))["thread_id"] == tid
        await root.threads.delete(tid)
        assert await status_of(lambda: alice.threads.get(tid)) == 404

    run(scenario())


def test_assistants_crons_and_store_are_isolated(world: World) -> None:
    async def scenario() -> None:
        alice, bob = world.client("alice"), world.client("bob")
        a = await alice.assistants.create(graph_id="agent", name=f"alice-{uuid.uuid4().hex[:4]}")
        assert a["metadata"]["graphwarden_owner"] == world.names["alice"]
        assert await status_of(lambda: bob.assistants.update(a["assistant_id"], name="pwned")) == 404
        assert await status_of(lambda: bob.assistants.delete(a["assistant_id"])) == 404
        # System assistants (from langgraph.json) are shared for reading but nobody's to change.
        system = (await bob.assistants.search(graph_id="agent", metadata={"created_by": "system"}))[0]
        assert (await bob.assistants.get(system["assistant_id"]))["graph_id"] == "agent"
        assert await status_of(lambda: bob.assistants.delete(system["assistant_id"])) == 404
        await alice.assistants.update(a["assistant_id"], name="renamed")

        tid = (await alice.threads.create())["thread_id"]
        cron = await alice.crons.create_for_thread(tid, "agent", schedule="0 0 1 1 *", input=RUN_INPUT)
        cid = cron["cron_id"]
        assert cid in [c["cron_id"] for c in await alice.crons.search()]
        assert cid not in [c["cron_id"] for c in await bob.crons.search()]
        assert await status_of(lambda: bob.crons.delete(cid)) == 404
        await alice.crons.delete(cid)

        me, other = world.names["alice"], world.names["bob"]
        await alice.store.put_item([me, "notes"], "k1", {"v": "alice's"})
        assert (await alice.store.get_item([me, "notes"], "k1"))["value"] == {"v": "alice's"}
        assert await status_of(lambda: bob.store.get_item([me, "notes"], "k1")) == 403
        assert await status_of(lambda: bob.store.put_item([me, "notes"], "k1", {"v": "bob's"})) == 403
        assert await status_of(lambda: bob.store.delete_item([me, "notes"], "k1")) == 403
        await bob.store.put_item([other, "notes"], "k1", {"v": "bob's"})
        found = await bob.store.search_items([])
        assert [i["namespace"][0] for i in found["items"]] == [other]
        assert await status_of(lambda: bob.store.search_items([me])) == 403
        namespaces = await bob.store.list_namespaces()
        assert all(ns[0] == other for ns in namespaces["namespaces"])

    run(scenario())


def test_store_label_escapes_subjects_with_periods() -> None:
    from graphwarden.policy.ownership import store_label

    assert store_label("alice") == "alice"
    assert store_label("alice.smith@example.com") == "alice%2Esmith@example%2Ecom"
    assert store_label("a%2Eb") != store_label("a.b")


def test_copy_keeps_the_owner(world: World) -> None:
    async def scenario() -> None:
        alice, bob = world.client("alice"), world.client("bob")
        tid = (await alice.threads.create(metadata={"case": "copy"}))["thread_id"]
        copy = await alice.threads.copy(tid)
        assert copy["metadata"]["graphwarden_owner"] == world.names["alice"]
        assert await status_of(lambda: bob.threads.get(copy["thread_id"])) == 404
        assert (await alice.threads.get(copy["thread_id"]))["thread_id"] == copy["thread_id"]

    run(scenario())
