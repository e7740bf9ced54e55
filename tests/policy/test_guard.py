"""The access guard in a running gateway (fake upstream: it echoes /ok, answers /status) and its
CLI: API keys, rate limits, stream limits, path tricks, approvals seam, policy files, explain."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support import rawhttp
from support.fake_upstream import FakeUpstream
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.httpcall import call

from graphwarden.config import GatewayConfig
from graphwarden.errors import ConfigError
from graphwarden.guard import Admit, ApprovalNeeded, Decision, Operation, Principal, Reject, RequestInfo
from graphwarden.identity.keys import KeyStore
from graphwarden.policy.guard import DecisionRecord, build_guard

POLICY = """
version = 1
[[rules]]
id = "meta"
anyone = true
operations = ["meta.*"]
effect = "allow"
[[rules]]
id = "needs-approval"
groups = ["ops"]
operations = ["threads.prune"]
effect = "approval"
cross_owner = true
[rules.approval]
approvers = ["lead"]
[[rules]]
id = "no-debug-streams"
groups = ["user"]
resources = ["threads"]
when = { stream_modes = ["debug"] }
effect = "deny"
reason = "debug streams are for admins"
[[rules]]
id = "users"
groups = ["user"]
resources = ["threads", "runs"]
effect = "allow"
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphwarden.cli", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    (tmp_path / "policy.toml").write_text(POLICY)
    return tmp_path


def _config(upstream: FakeUpstream, state: Path, **policy: object) -> GatewayConfig:
    return make_config(f"http://127.0.0.1:{upstream.port}", state={"dir": str(state)},
                       policy={"file": str(state / "policy.toml"), **policy})


@pytest.fixture()
def gw(loop_thread: LoopThread, fake_upstream: FakeUpstream, state: Path) -> Iterator[GatewayHandle]:
    config = _config(fake_upstream, state, rate_limits={"requests_per_s": 5, "burst": 3, "max_streams": 1})
    handle = start(loop_thread, config, build_guard(config))
    yield handle
    handle.drain(1)


def test_keys_cli_create_list_revoke(gw: GatewayHandle, state: Path) -> None:
    made = _cli("keys", "--state-dir", str(state), "create", "--subject", "ci-bot", "--group", "user", "--group", "ops")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("gwk_") and "shown only now" in made.stderr
    raw = (state / "keys.sqlite3").read_bytes()
    assert key.encode() not in raw and key.split("_", 2)[2].encode() not in raw  # only the hash is stored
    listed = _cli("keys", "--state-dir", str(state), "list")
    assert "ci-bot" in listed.stdout and "user,ops" in listed.stdout and key.split("_", 2)[2] not in listed.stdout
    status, _, echo = call(gw.url, "GET", "/ok", headers={"x-api-key": key})
    assert status == 200
    assert all(name not in ("x-api-key", "authorization") for name, _ in echo["headers"])
    assert call(gw.url, "GET", "/ok", token=key)[0] == 200  # also as a bearer token
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    assert call(gw.url, "GET", "/ok", headers={"x-api-key": tampered})[0] == 401
    key_id = key.split("_")[1]
    revoked = _cli("keys", "--state-dir", str(state), "revoke", key_id)
    assert revoked.returncode == 0
    time.sleep(5.2)  # identity.api_key_cache_s
    status, headers, err = call(gw.url, "GET", "/ok", headers={"x-api-key": key})
    assert status == 401 and "revoked" in err["reason"] and "www-authenticate" in headers
    assert _cli("keys", "--state-dir", str(state), "revoke", key_id).returncode == 1


def _key(state: Path, subject: str, *groups: str) -> str:
    store = KeyStore.for_state_dir(state)
    try:
        return store.create(subject, groups)[0]
    finally:
        store.close()


def test_rate_limit_answers_429_with_retry_after(gw: GatewayHandle, state: Path) -> None:
    key = _key(state, "busy", "user")
    other = _key(state, "calm", "user")
    statuses = [call(gw.url, "GET", "/ok", headers={"x-api-key": key}) for _ in range(6)]
    codes = [s for s, _, _ in statuses]
    assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
    limited = next(h for s, h, _ in statuses if s == 429)
    assert int(limited["retry-after"]) >= 1
    assert call(gw.url, "GET", "/ok", headers={"x-api-key": other})[0] == 200  # per principal
    time.sleep(1.0)
    assert call(gw.url, "GET", "/ok", headers={"x-api-key": key})[0] == 200  # refilled


def test_concurrent_stream_limit_and_release(loop_thread: LoopThread, fake_upstream: FakeUpstream, state: Path) -> None:
    config = _config(fake_upstream, state, rate_limits={"requests_per_s": 0, "burst": 0, "max_streams": 1})
    guard = build_guard(config)
    p = Principal("s1", ("user",), auth_method="api_key")
    info = RequestInfo("GET", "/threads/t/runs/r/stream", (), "127.0.0.1", "req-1")
    op = guard.classify(info)
    assert op.name == "runs.join_stream"
    guard.owner_isolation = False  # this test is about the stream slots only

    async def scenario() -> tuple[Decision, Decision, Decision]:
        async def authed(_info: RequestInfo) -> Principal:
            return p
        guard.auth.authenticate = authed  # type: ignore[method-assign]
        first = await guard.authorize(info, op, None)
        second = await guard.authorize(info, op, None)
        assert isinstance(first, Admit) and first.on_complete is not None
        first.on_complete()
        third = await guard.authorize(info, op, None)
        return first, second, third

    first, second, third = loop_thread.run(scenario())
    assert isinstance(second, Reject) and second.status == 429 and dict(second.headers)[b"retry-after"] == b"1"
    assert isinstance(third, Admit)


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/internal/truncate", 404),  # not in this policy: unknown to it? no: a known route, denied
        (b"/threads/../internal/truncate", 400),
        (b"/ok/%2e%2e/internal/truncate", 400),
        (b"/internal%2ftruncate", 400),
        (b"//internal/truncate", 400),
        (b"/Internal/truncate", 404),
        (b"/internal/truncate/", 404),
        (b"/%69nternal/truncate", 403),
        (b"http://127.0.0.1/internal/truncate", 400),
    ],
)
def test_path_tricks_never_reach_denied_routes(gw: GatewayHandle, state: Path, fake_upstream: FakeUpstream,
                                               target: bytes, status: int) -> None:
    key = _key(state, "trickster", "user").encode()
    before = len(fake_upstream.requests)
    reply = rawhttp.request(gw.port, b"POST " + target + b" HTTP/1.1\r\nhost: x\r\nx-api-key: " + key +
                            b"\r\ncontent-length: 0\r\n\r\n", method=b"POST")
    expected = 403 if target == b"/internal/truncate" else status
    assert reply.status == expected, reply.body
    assert len(fake_upstream.requests) == before  # nothing reached the upstream


def test_method_override_headers_do_not_pass(gw: GatewayHandle, state: Path) -> None:
    key = _key(state, "override", "user")
    status, _, echo = call(gw.url, "GET", "/ok", headers={"x-api-key": key, "x-http-method-override": "DELETE",
                                                          "x-original-url": "/internal/truncate"})
    assert status == 200
    names = [n for n, _ in echo["headers"]]
    assert "x-http-method-override" not in names and "x-original-url" not in names


def test_body_conditions_and_bad_json(gw: GatewayHandle, state: Path) -> None:
    key = _key(state, "streamer", "user")
    status, _, err = call(gw.url, "POST", "/threads/t1/runs/stream", headers={"x-api-key": key},
                          body={"assistant_id": "agent", "stream_mode": ["values", "debug"]})
    assert status == 403 and err["reason"] == "debug streams are for admins" and err["rule"] == "no-debug-streams"
    status, _, err = call(gw.url, "POST", "/threads/t1/runs/stream", headers={"x-api-key": key, "content-type": "application/json"},
                          raw_body=b"{not json")
    assert status == 400 and "JSON" in err["reason"]


class RecordingGate:
    """Stands in for graphwarden.approvals (another area) at the ApprovalGate seam."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, object]]] = []

    def validate_spec(self, rule: str, spec: Mapping[str, object]) -> None:
        if "approvers" not in spec:
            raise ValueError("approvers is required")

    async def check(self, info: RequestInfo, principal: Principal, op: Operation, body: bytes | None,
                    needed: ApprovalNeeded) -> Decision:
        self.calls.append((needed.rule, needed.spec))
        return Reject(202, "approval_pending", "waiting for approval", extra={"approval_id": "ap-1"})


def test_approval_effect_without_and_with_gate(loop_thread: LoopThread, fake_upstream: FakeUpstream, state: Path) -> None:
    key = _key(state, "op", "ops")
    config = _config(fake_upstream, state)
    handle = start(loop_thread, config, build_guard(config))
    try:
        status, _, err = call(handle.url, "POST", "/threads/prune", headers={"x-api-key": key}, body={"thread_ids": []})
        assert status == 403 and err["reason"] == "approval required but approvals are not enabled"
    finally:
        handle.drain(1)
    gate = RecordingGate()
    guard = build_guard(config, approval_gate=gate)
    seen: list[DecisionRecord] = []
    guard.on_decision.append(seen.append)
    handle = start(loop_thread, config, guard)
    try:
        status, _, err = call(handle.url, "POST", "/threads/prune", headers={"x-api-key": key}, body={"thread_ids": []})
        assert status == 202 and err["approval_id"] == "ap-1"
        assert gate.calls == [("needs-approval", {"approvers": ["lead"]})]
        assert seen[-1].effect == "approval" and seen[-1].rule == "needs-approval" and seen[-1].principal.subject == "op"  # type: ignore[union-attr]
    finally:
        handle.drain(1)
    bad = state / "bad.toml"
    bad.write_text(POLICY.replace('approvers = ["lead"]', 'who = "lead"'))
    with pytest.raises(ConfigError) as exc:
        build_guard(make_config(f"http://127.0.0.1:{fake_upstream.port}", state={"dir": str(state)},
                                policy={"file": str(bad)}), approval_gate=gate)
    assert "approvers is required" in str(exc.value.message)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[rules]]\nid='a'\neffect='allow'\n", "say who"),
        ("[[rules]]\nid='a'\nanyone=true\neffect='permit'\n", "effect must be"),
        ("[[rules]]\nid='a'\nanyone=true\neffect='allow'\nactions=['read','fly']\n", "unknown action"),
        ("[[rules]]\nid='a'\nanyone=true\neffect='allow'\ngroup=['x']\n", "unknown key"),
        ("[[rules]]\nid='a'\nanyone=true\neffect='allow'\n[[rules]]\nid='a'\nanyone=true\neffect='deny'\n", "duplicate"),
        ("[[rules]]\nid='a'\nanyone=true\neffect='approval'\n", "approval"),
        ("rules = 3", "[[rules]]"),
        ("[[rules]\n", "TOML"),
    ],
)
def test_policy_validation_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    out = _cli("policy", "check", "--policy", str(path))
    assert out.returncode == 2 and needle in out.stderr, out.stderr


def test_policy_explain_cli(tmp_path: Path) -> None:
    body = tmp_path / "b.json"
    body.write_text(json.dumps({"assistant_id": "agent", "stream_mode": "debug"}))
    (tmp_path / "p.toml").write_text(POLICY)
    out = _cli("policy", "explain", "--policy", str(tmp_path / "p.toml"), "--subject", "u1", "--group", "user",
               "--method", "POST", "--path", "/threads/t1/runs/stream", "--body", str(body))
    assert out.returncode == 1 and "DENY" in out.stdout and "no-debug-streams" in out.stdout
    out = _cli("policy", "explain", "--subject", "u1", "--group", "user", "--method", "GET", "--path", "/threads/t1")
    assert out.returncode == 0 and "ALLOW" in out.stdout and "users-own-work" in out.stdout
    out = _cli("policy", "explain", "--subject", "u1", "--method", "POST", "--path", "/internal/truncate")
    assert out.returncode == 1 and "dev-routes-closed" in out.stdout


def test_embedded_defaults_need_a_key(loop_thread: LoopThread, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    config = make_config(f"http://127.0.0.1:{fake_upstream.port}", state={"dir": str(tmp_path)})
    handle = start(loop_thread, config, build_guard(config))
    try:
        assert call(handle.url, "GET", "/ok")[0] == 401
        key = _key(tmp_path, "me", "admin")
        assert call(handle.url, "GET", "/ok", headers={"x-api-key": key})[0] == 200
    finally:
        handle.drain(1)
    with pytest.raises(ConfigError):
        build_guard(make_config(f"http://127.0.0.1:{fake_upstream.port}", state={"dir": str(tmp_path)},
                                identity={"api_keys": False}))


def test_decisions_reach_hooks(gw: GatewayHandle, state: Path) -> None:
    seen: list[DecisionRecord] = []
    refused: list[DecisionRecord] = []
    gw.gateway.guard.on_decision.append(seen.append)  # type: ignore[attr-defined]
    gw.gateway.guard.on_refusal.append(refused.append)  # type: ignore[attr-defined]
    key = _key(state, "hooked", "user")
    call(gw.url, "GET", "/ok", headers={"x-api-key": key})
    call(gw.url, "POST", "/internal/truncate", headers={"x-api-key": key})
    call(gw.url, "GET", "/ok")
    assert [(r.effect, r.operation, r.rule) for r in seen] == [
        ("allow", "meta.ok", "meta"), ("deny", "dev.truncate", None), ("unauthenticated", "meta.ok", None)]
    # refusal hooks (the audit trail's) never see an allow: its rule travels on the Admit
    assert refused == seen[1:]



def test_sighup_reloads_the_policy(fake_upstream: FakeUpstream, state: Path) -> None:
    import signal

    config = _config(fake_upstream, state, reload_poll_s=3600)
    guard = build_guard(config)  # installs the SIGHUP handler (main thread)
    before = guard.policies.policy
    (state / "policy.toml").write_text(POLICY + '\n[[rules]]\nid = "extra"\nsubjects = ["x"]\neffect = "deny"\n')
    assert guard.policies.current() is before  # the poll interval has not passed
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(0.05)
    after = guard.policies.current()
    assert after is not before and after.rules[-1].id == "extra"


def test_policy_reloads_are_reported_with_the_files_digest(fake_upstream: FakeUpstream, state: Path) -> None:
    import blake3

    config = _config(fake_upstream, state, reload_poll_s=3600)
    guard = build_guard(config)
    store = guard.policies
    policy_file = state / "policy.toml"
    first = store.digest
    assert first == blake3.blake3(policy_file.read_bytes()).hexdigest()
    results: list[dict[str, object]] = []
    store.on_reload.append(results.append)
    policy_file.write_text(POLICY + '\n[[rules]]\nid = "extra"\nsubjects = ["x"]\neffect = "deny"\n')
    assert store.reload()
    loaded = blake3.blake3(policy_file.read_bytes()).hexdigest()
    assert results[0] == {"result": "loaded", "file": str(policy_file), "digest": loaded, "previous": first,
                          "rules": [r.id for r in store.policy.rules]}
    assert store.digest == loaded and "extra" in results[0]["rules"]  # type: ignore[operator]
    policy_file.write_text(POLICY + '\n[[rules]]\nid = "broken"\neffect = "maybe"\n')
    assert not store.reload()
    assert results[1]["result"] == "rejected" and results[1]["in_force"] == loaded
    assert results[1]["digest"] == blake3.blake3(policy_file.read_bytes()).hexdigest()
    assert "broken" in str(results[1]["error"]) and store.digest == loaded


def test_a_policy_whose_reload_cannot_be_recorded_is_not_put_in_force(fake_upstream: FakeUpstream, state: Path) -> None:
    config = _config(fake_upstream, state, reload_poll_s=0.01)
    store = build_guard(config).policies
    before, digest = store.policy, store.digest
    down = [True]

    def record(_result: dict[str, object]) -> None:
        if down[0]:
            raise OSError("No space left on device")

    store.on_reload.append(record)
    (state / "policy.toml").write_text(POLICY + '\n[[rules]]\nid = "extra"\nsubjects = ["x"]\neffect = "deny"\n')
    assert not store.reload()
    assert store.policy is before and store.digest == digest
    down[0] = False
    time.sleep(0.02)
    after = store.current()  # the file is checked again: the change is now recorded and in force
    assert after is not before and after.rules[-1].id == "extra" and store.digest != digest
