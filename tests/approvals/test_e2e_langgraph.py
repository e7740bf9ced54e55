"""End to end: the real langgraph-sdk, through a gateway with approvals, against a real
`langgraph dev` server. The server's own run list is the witness of what was executed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from langgraph_sdk import get_client

from approval_guard import ApprovalTestGuard, Rule, always, on_resume
from graphwarden.approvals import ApprovalService, install
from graphwarden.cli import main as cli_main
from support.harness import GatewayHandle, LoopThread, make_config, start

pytestmark = pytest.mark.integration

ALICE = ("alice", "analysts")
BOB = ("bob", "sre")
CAROL = ("carol", "sre")


class Gw:
    """A gateway with an approval service on a state directory; restartable."""

    def __init__(self, lt: LoopThread, server: str, state_dir: Path, rule: Rule) -> None:
        self.lt, self.server, self.state_dir, self.rule = lt, server, state_dir, rule
        self.handle: GatewayHandle | None = None
        self.service: ApprovalService | None = None

    def start(self) -> Gw:
        config = make_config(self.server, upstream={"response_timeout_s": 60.0}, state={"dir": str(self.state_dir)},
                             approvals={"poll_interval_s": 0.2, "hold_seconds": 30.0})
        service = ApprovalService.from_config(config)
        self.service = service
        self.handle = start(self.lt, config, ApprovalTestGuard(service, self.rule),
                            hooks=(lambda gateway: install(gateway, service),))
        return self

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.drain(2)
            self.handle = None
        if self.service is not None:
            self.lt.run(self.service.aclose())
            self.service = None

    @property
    def url(self) -> str:
        assert self.handle is not None
        return self.handle.url


@pytest.fixture
def gw_factory(loop_thread: LoopThread, langgraph_server: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Gw] = []

    def make(rule: Rule) -> Gw:
        g = Gw(loop_thread, langgraph_server, tmp_path / "state", rule).start()
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


def sdk(url: str, who: tuple[str, str]) -> Any:
    return get_client(url=url, headers={"x-test-user": who[0], "x-test-groups": who[1]})


def api(url: str, method: str, path: str, who: tuple[str, str], body: dict[str, object] | None = None
        ) -> tuple[int, Any]:
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"x-test-user": who[0], "x-test-groups": who[1],
                                          "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


async def wait_pending(url: str, approver: tuple[str, str], timeout_s: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(api, url, "GET", "/_graphwarden/approvals", approver)
        assert status == 200, body
        acting = [a for a in body["approvals"] if a["can_act"]]
        if acting:
            assert len(acting) == 1, acting
            return acting[0]  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError("no pending approval appeared")


def error_code(exc: httpx.HTTPStatusError) -> str:
    text = " ".join(getattr(exc, "__notes__", []))
    with contextlib.suppress(Exception):
        text += exc.response.text
    for code in ("approval_denied", "approval_expired", "approval_pending", "justification_required"):
        if code in text:
            return code
    return text


async def server_runs(server: str, thread_id: str) -> list[dict[str, Any]]:
    return await get_client(url=server).runs.list(thread_id)  # type: ignore[no-any-return]


def test_held_run_is_approved_by_another_approver_and_executes_once(gw_factory: Any, langgraph_server: str) -> None:
    gw = gw_factory(always({"approver_groups": ["sre"], "mode": "hold", "hold_seconds": 30}))

    async def scenario() -> None:
        alice = sdk(gw.url, ALICE)
        tid = (await alice.threads.create())["thread_id"]
        held = asyncio.create_task(alice.runs.wait(tid, "agent", input={"text": "wire the funds"}))
        pending = await wait_pending(gw.url, BOB)
        aid = pending["approval_id"]
        assert pending["requester"] == "alice" and pending["request"]["params"] == {"thread_id": tid}
        await asyncio.sleep(0.5)
        assert not held.done()
        assert await server_runs(langgraph_server, tid) == []  # held at the gateway
        # The requester cannot approve; an outsider neither sees nor approves it.
        status, body = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve",
                                               ("alice", "analysts,sre"), {"comment": "me"})
        assert (status, body["error"]) == (403, "self_approval")
        status, _ = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve",
                                            ("eve", "sales"), {})
        assert status == 404
        status, body = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve",
                                               BOB, {"comment": "checked the beneficiary"})
        assert status == 200 and body["decided"] is True
        result = await asyncio.wait_for(held, 30)
        assert "hello, you said: wire the funds" in result["messages"]
        runs = await server_runs(langgraph_server, tid)
        assert len(runs) == 1 and runs[0]["status"] == "success"
        status, shown = await asyncio.to_thread(api, gw.url, "GET", f"/_graphwarden/approvals/{aid}", BOB)
        assert status == 200 and shown["state"] == "used"
        assert [(e["event"], e["actor"]) for e in shown["events"]] == [
            ("request", "alice"), ("approve", "bob"), ("use", "alice")]
        assert shown["events"][1]["comment"] == "checked the beneficiary"
        assert "wire the funds" not in orjson.dumps(shown).decode()  # body shown as hash/size/keys only
        assert {"assistant_id", "input"} <= set(shown["request"]["body"]["top_level_keys"])

    asyncio.run(scenario())


def test_denied_run_never_reaches_the_server(gw_factory: Any, langgraph_server: str) -> None:
    gw = gw_factory(always({"approver_groups": ["sre"], "approvals_required": 2, "mode": "hold"}))

    async def scenario() -> None:
        alice = sdk(gw.url, ALICE)
        tid = (await alice.threads.create())["thread_id"]
        held = asyncio.create_task(alice.runs.wait(tid, "agent", input={"text": "drop the table"}))
        aid = (await wait_pending(gw.url, BOB))["approval_id"]
        status, body = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve", BOB, {})
        assert status == 200 and body["decided"] is False  # 1 of 2
        await asyncio.sleep(0.3)
        assert not held.done()
        status, body = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/deny", CAROL,
                                               {"comment": "no schema changes in the freeze"})
        assert status == 200 and body["approval"]["state"] == "denied"
        with pytest.raises(httpx.HTTPStatusError) as info:
            await asyncio.wait_for(held, 30)
        assert info.value.response.status_code == 403
        assert error_code(info.value) == "approval_denied"
        assert await server_runs(langgraph_server, tid) == []

    asyncio.run(scenario())


def test_async_mode_202_status_url_and_exactly_once(gw_factory: Any, langgraph_server: str) -> None:
    gw = gw_factory(always({"approver_groups": ["sre"], "mode": "async"}))

    async def scenario() -> None:
        alice = sdk(gw.url, ALICE)
        direct = get_client(url=langgraph_server)
        tid = (await alice.threads.create())["thread_id"]
        first = await alice.runs.create(tid, "agent", input={"text": "async please"})
        assert first["error"] == "approval_pending"
        aid = first["approval_id"]
        assert first["status_url"] == f"/_graphwarden/approvals/{aid}"
        status, body = await asyncio.to_thread(api, gw.url, "GET", first["status_url"], ALICE)
        assert status == 200 and body["state"] == "pending" and body["can_act"] is False
        again = await alice.runs.create(tid, "agent", input={"text": "async please"})
        assert again["approval_id"] == aid  # same request, same approval
        status, body = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve", BOB, {})
        assert status == 200
        run = await alice.runs.create(tid, "agent", input={"text": "async please"})
        assert "run_id" in run
        await direct.runs.join(tid, run["run_id"])
        replay = await alice.runs.create(tid, "agent", input={"text": "async please"})
        assert replay["error"] == "approval_pending" and replay["approval_id"] != aid
        runs = await server_runs(langgraph_server, tid)
        assert [r["run_id"] for r in runs] == [run["run_id"]]

    asyncio.run(scenario())


def test_expired_approval_cannot_be_used(gw_factory: Any, langgraph_server: str) -> None:
    gw = gw_factory(always({"approver_groups": ["sre"], "mode": "async", "expires_seconds": 1}))

    async def scenario() -> None:
        alice = sdk(gw.url, ALICE)
        tid = (await alice.threads.create())["thread_id"]
        first = await alice.runs.create(tid, "agent", input={"text": "late"})
        aid = first["approval_id"]
        await asyncio.sleep(1.2)
        status, body = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve", BOB, {})
        assert (status, body["error"]) == (409, "approval_expired")
        with pytest.raises(httpx.HTTPStatusError) as info:
            await alice.runs.create(tid, "agent", input={"text": "late"})
        assert info.value.response.status_code == 403 and error_code(info.value) == "approval_expired"
        fresh = await alice.runs.create(tid, "agent", input={"text": "late"})
        assert fresh["error"] == "approval_pending" and fresh["approval_id"] != aid
        assert await server_runs(langgraph_server, tid) == []

    asyncio.run(scenario())


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(list(argv))
    return code, out.getvalue()


def test_restart_keeps_pending_approval_and_cli_acts_on_store_and_gateway(
        gw_factory: Any, langgraph_server: str, tmp_path: Path) -> None:
    rule = always({"approver_groups": ["sre"], "mode": "async", "approvals_required": 2})
    gw = gw_factory(rule)
    state_dir = str(tmp_path / "state")

    async def request(url: str) -> dict[str, Any]:
        alice = sdk(url, ALICE)
        return await alice.runs.create(tid, "agent", input={"text": "survive a restart"})  # type: ignore[no-any-return]

    tid = asyncio.run(sdk(gw.url, ALICE).threads.create())["thread_id"]
    aid = asyncio.run(request(gw.url))["approval_id"]
    gw.stop()
    # Gateway down: an operator approves through the store (1 of 2).
    code, out = run_cli("approvals", "list", "--state-dir", state_dir, "--json")
    assert code == 0 and [a["approval_id"] for a in orjson.loads(out)["approvals"]] == [aid]
    code, out = run_cli("approvals", "approve", aid, "--state-dir", state_dir, "--as", "alice", "--group", "sre")
    assert code == 1  # self-approval refused on the store too
    code, out = run_cli("approvals", "approve", aid, "--state-dir", state_dir, "--as", "bob", "--group", "sre",
                        "--comment", "first")
    assert code == 0 and "pending (1/2 approvals)" in out
    gw.start()  # same state directory: a new process would see the same
    assert asyncio.run(request(gw.url))["approval_id"] == aid
    code, out = run_cli("approvals", "list", "--gateway", gw.url, "--token", "carol:sre")
    assert code == 0 and aid in out
    code, out = run_cli("approvals", "show", aid, "--gateway", gw.url, "--token", "carol:sre")
    assert code == 0 and orjson.loads(out)["approvals_given"] == 1
    code, out = run_cli("approvals", "approve", aid, "--gateway", gw.url, "--token", "carol:sre", "--comment", "second")
    assert code == 0 and "approved (2/2 approvals)" in out
    run = asyncio.run(request(gw.url))
    assert "run_id" in run
    asyncio.run(get_client(url=langgraph_server).runs.join(tid, run["run_id"]))
    assert [r["run_id"] for r in asyncio.run(server_runs(langgraph_server, tid))] == [run["run_id"]]
    code, _ = run_cli("approvals", "deny", aid, "--gateway", gw.url, "--token", "dave:sre")
    assert code == 1


def test_resume_of_an_interrupted_thread_is_gated(gw_factory: Any, langgraph_server: str, tmp_path: Path) -> None:
    gw = gw_factory(on_resume({"approver_groups": ["sre"], "mode": "hold", "hold_seconds": 30}))
    state_dir = str(tmp_path / "state")

    async def scenario() -> None:
        alice = sdk(gw.url, ALICE)
        direct = get_client(url=langgraph_server)
        tid = (await alice.threads.create())["thread_id"]
        await alice.runs.wait(tid, "agent", input={"pause": True, "text": "refund 500"})  # not gated
        state = await direct.threads.get_state(tid)
        assert state["next"] == ["review"]  # interrupted, waiting for a human
        held = asyncio.create_task(alice.runs.wait(tid, "agent", command={"resume": "yes, refund"}))
        aid = (await wait_pending(gw.url, BOB))["approval_id"]
        assert len(await server_runs(langgraph_server, tid)) == 1
        # Approve from another process (the CLI on the store): the held request sees it by polling.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "graphwarden.cli", "approvals", "approve", aid, "--state-dir", state_dir,
            "--as", "bob", "--group", "sre", "--comment", "refund ok",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        result = await asyncio.wait_for(held, 30)
        assert result["approved"] == "yes, refund"
        assert "finish" in result["steps"]
        assert len(await server_runs(langgraph_server, tid)) == 2

    asyncio.run(scenario())


def test_two_gateways_share_the_store_held_stream_released_by_the_other(
        gw_factory: Any, langgraph_server: str) -> None:
    rule = always({"approver_groups": ["sre"], "mode": "hold", "hold_seconds": 30})
    first, second = gw_factory(rule), gw_factory(rule)  # same state directory, separate services

    async def scenario() -> None:
        alice = sdk(first.url, ALICE)
        tid = (await alice.threads.create())["thread_id"]

        async def collect() -> list[str]:
            return [part.event async for part in alice.runs.stream(
                tid, "agent", input={"text": "streamed", "chunks": 2}, stream_mode=["values", "custom"])]

        held = asyncio.create_task(collect())
        pending = await wait_pending(second.url, BOB)  # visible through the other gateway
        assert await server_runs(langgraph_server, tid) == []
        # Both approvers act at once on different gateways: one decision.
        results = await asyncio.gather(
            asyncio.to_thread(api, first.url, "POST", f"/_graphwarden/approvals/{pending['approval_id']}/deny",
                              CAROL, {"comment": "race"}),
            asyncio.to_thread(api, second.url, "POST", f"/_graphwarden/approvals/{pending['approval_id']}/approve",
                              BOB, {}),
        )
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 409], results
        winner = next(body for status, body in results if status == 200)["approval"]["state"]
        if winner == "approved":
            events = await asyncio.wait_for(held, 30)
            assert events[0] == "metadata" and events.count("custom") == 2
            assert len(await server_runs(langgraph_server, tid)) == 1
        else:
            with pytest.raises(httpx.HTTPStatusError) as info:
                await asyncio.wait_for(held, 30)
            assert info.value.response.status_code == 403
            assert await server_runs(langgraph_server, tid) == []

    asyncio.run(scenario())


def test_restart_during_a_hold_keeps_the_pending_approval(gw_factory: Any, langgraph_server: str) -> None:
    gw = gw_factory(always({"approver_groups": ["sre"], "mode": "hold", "hold_seconds": 30}))

    async def scenario() -> None:
        tid = (await sdk(gw.url, ALICE).threads.create())["thread_id"]
        held = asyncio.create_task(sdk(gw.url, ALICE).runs.wait(tid, "agent", input={"text": "across a restart"}))
        aid = (await wait_pending(gw.url, BOB))["approval_id"]
        await asyncio.to_thread(gw.stop)  # the held connection is cut by the drain
        with pytest.raises(httpx.HTTPError):
            await asyncio.wait_for(held, 30)
        await asyncio.to_thread(gw.start)
        again = asyncio.create_task(sdk(gw.url, ALICE).runs.wait(tid, "agent", input={"text": "across a restart"}))
        pending = await wait_pending(gw.url, BOB)
        assert pending["approval_id"] == aid  # the same approval, held again
        status, _ = await asyncio.to_thread(api, gw.url, "POST", f"/_graphwarden/approvals/{aid}/approve", BOB, {})
        assert status == 200
        result = await asyncio.wait_for(again, 30)
        assert "hello, you said: across a restart" in result["messages"]
        assert len(await server_runs(langgraph_server, tid)) == 1

    asyncio.run(scenario())
