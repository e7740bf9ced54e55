"""An operator changes the masking catalogue of a running gateway (in front of the real
`langgraph dev`, driven with langgraph-sdk): the new set masks what reaches the runtime and the
client from then on, a broken file is rejected with the set in force kept, and the audit trail
says which catalogue was in force when (BLAKE3 digests of the file's bytes)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
from langgraph_sdk import get_client
from support.harness import GatewayHandle, LoopThread, make_config, start

from graphwarden.assembly import Assembly
from graphwarden.audit._verify import read_records
from graphwarden.identity.keys import KeyStore

pytestmark = pytest.mark.integration

POLICY = """
version = 1

[[rules]]
id = "users-run"
groups = ["user"]
resources = ["assistants", "threads", "runs", "crons", "store", "meta"]
effect = "allow"
"""
EMPLOYEE = '[[entries]]\nid = "employee_id"\nentity = "EMPLOYEE_ID"\npatterns = [\'\\bEMP-\\d{6}\\b\']\nmax_len = 10\n'
BAD = '[[entries]]\nid = "broken_entry"\nentity = "BROKEN"\npatterns = [\'(unclosed\']\nmax_len = 10\n'
VALUE = "EMP-482913"


class Rig:
    def __init__(self, gw: GatewayHandle, assembly: Assembly, state: Path, upstream: str, key: str) -> None:
        self.gw, self.assembly, self.state, self.upstream, self.key = gw, assembly, state, upstream, key
        self.catalogue = state / "masking.toml"

    def records(self, event: str) -> list[dict[str, Any]]:
        assert self.assembly.audit.sync(10.0)
        return [b for r in read_records(self.state / "audit") if r.kind == "gateway"
                for b in [r.json()] if b.get("event") == event]

    def create_thread(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """A thread whose metadata holds the value: (what the client got, what the runtime stored)."""
        async def go() -> tuple[dict[str, Any], dict[str, Any]]:
            client = get_client(url=self.gw.url, api_key=self.key)
            got = await client.threads.create(metadata={"note": f"ticket by {VALUE}"})
            stored = await get_client(url=self.upstream).threads.get(got["thread_id"])
            return dict(got), dict(stored)

        return asyncio.run(go())

    def write(self, text: str) -> None:
        before = self.catalogue.stat().st_mtime_ns
        self.catalogue.write_text(text)
        st = self.catalogue.stat()
        if st.st_mtime_ns <= before:  # rewritten within the clock's tick
            os.utime(self.catalogue, ns=(st.st_atime_ns, before + 1_000_000))


@pytest.fixture(scope="module")
def rig(loop_thread: LoopThread, langgraph_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    d = tmp_path_factory.mktemp("reload")
    (d / "policy.toml").write_text(POLICY)
    (d / "masking.toml").write_text("version = 1\n")
    config = make_config(
        langgraph_server,
        state={"dir": str(d)},
        policy={"file": str(d / "policy.toml")},
        masking={"catalogue": str(d / "masking.toml"), "reload_poll_s": 0.05},
        audit={"durability": "batch", "batch_window_s": 0.01},
        evidence={"follow_crons": False},
    )
    store = KeyStore.for_state_dir(d)
    try:
        key = store.create("operator-test", ["user"])[0]
    finally:
        store.close()
    assembly = Assembly(config)
    guard = assembly.build_guard(config)
    gw = start(loop_thread, config, guard, hooks=(assembly.install,))
    yield Rig(gw, assembly, d, langgraph_server, key)
    gw.drain(2)


def _wait(pred: Any, timeout: float = 20.0) -> Any:
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_catalogue_changes_take_effect_and_go_on_the_record(rig: Rig) -> None:
    first = blake3.blake3(rig.catalogue.read_bytes()).hexdigest()
    [start_record] = rig.records("start")
    assert start_record["masking_catalogue"] == {"file": str(rig.catalogue), "digest": first}
    assert start_record["policy"]["digest"] == blake3.blake3((rig.state / "policy.toml").read_bytes()).hexdigest()

    # not in the catalogue yet: the value reaches the runtime and comes back
    got, stored = rig.create_thread()
    assert VALUE in got["metadata"]["note"] and VALUE in stored["metadata"]["note"]

    rig.write(EMPLOYEE)
    [loaded] = _wait(lambda: rig.records("masking_reload"))
    assert loaded["result"] == "loaded" and loaded["previous"] == first
    assert loaded["digest"] == blake3.blake3(rig.catalogue.read_bytes()).hexdigest()
    got, stored = rig.create_thread()
    assert got["metadata"]["note"] == "ticket by [EMPLOYEE_ID]"
    assert stored["metadata"]["note"] == "ticket by [EMPLOYEE_ID]"  # masked before the runtime saw it

    # a broken file: rejected, named, and the set in force still masks
    rig.write(EMPLOYEE + BAD)
    rejected = _wait(lambda: [r for r in rig.records("masking_reload") if r["result"] == "rejected"])
    assert "broken_entry" in rejected[0]["error"] and rejected[0]["in_force"] == loaded["digest"]
    got, stored = rig.create_thread()
    assert got["metadata"]["note"] == "ticket by [EMPLOYEE_ID]" == stored["metadata"]["note"]


def test_policy_file_changes_go_on_the_record(rig: Rig) -> None:
    policy = rig.state / "policy.toml"
    before = policy.stat().st_mtime_ns
    policy.write_text(POLICY + '\n[[rules]]\nid = "nobody-deletes"\nsubjects = ["x"]\neffect = "deny"\n')
    if policy.stat().st_mtime_ns <= before:
        os.utime(policy, ns=(before + 1_000_000, before + 1_000_000))
    # the policy is checked in the request path, once `reload_poll_s` (2 s by default) has passed
    time.sleep(2.1)
    rig.create_thread()
    [r] = _wait(lambda: rig.records("policy_reload"))
    assert r["result"] == "loaded" and "nobody-deletes" in r["rules"]
    assert r["digest"] == blake3.blake3(policy.read_bytes()).hexdigest()
