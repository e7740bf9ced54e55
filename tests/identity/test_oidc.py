"""OIDC bearer tokens from a real provider (oidc-provider-mock) through the gateway to a real
`langgraph dev` server: what is accepted, what is rejected and why, and key rotation."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.httpcall import call
from support.oidc import Provider

from graphwarden.policy.guard import build_guard

pytestmark = pytest.mark.integration

POLICY = """
version = 1
[[rules]]
id = "readers"
groups = ["reader"]
operations = ["meta.info", "assistants.search", "assistants.read"]
effect = "allow"
[[rules]]
id = "no-writes-for-readers"
groups = ["reader"]
resources = ["assistants"]
effect = "deny"
reason = "readers may not change assistants"
[[rules]]
id = "admins"
groups = ["admin"]
resources = ["assistants", "threads", "runs", "meta"]
effect = "allow"
cross_owner = true
"""


@pytest.fixture(scope="module")
def gw(loop_thread: LoopThread, langgraph_server: str, provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    d = tmp_path_factory.mktemp("oidc")
    policy = d / "policy.toml"
    policy.write_text(POLICY)
    config = make_config(
        langgraph_server,
        state={"dir": str(d)},
        identity={
            "oidc": [{"issuer": provider.issuer, "audience": ["graphwarden"], "leeway_s": 5,
                      "jwks_min_refresh_interval_s": 0.5, "groups_claim": "realm_access.roles"}],
            "upstream_subject_header": "x-graphwarden-subject",
            "upstream_groups_header": "x-graphwarden-groups",
        },
        policy={"file": str(policy), "reload_poll_s": 0.2, "rate_limits": {"requests_per_s": 1000, "burst": 1000}},
    )
    handle = start(loop_thread, config, build_guard(config))
    yield handle
    handle.drain(2)


def _token(provider: Provider, sub: str, roles: list[str]) -> str:
    return provider.login(sub, {"realm_access": {"roles": roles}, "name": sub.title()})


def test_groups_get_exactly_what_policy_grants(gw: GatewayHandle, provider: Provider) -> None:
    reader = _token(provider, "rita", ["reader"])
    admin = _token(provider, "ada", ["admin"])
    assert call(gw.url, "GET", "/info", token=reader)[0] == 200
    status, _, found = call(gw.url, "POST", "/assistants/search", token=reader, body={"graph_id": "agent"})
    assert status == 200 and found and found[0]["graph_id"] == "agent"
    status, _, err = call(gw.url, "POST", "/assistants", token=reader, body={"graph_id": "agent"})
    assert status == 403 and err["reason"] == "readers may not change assistants" and err["rule"] == "no-writes-for-readers"
    status, _, err = call(gw.url, "POST", "/threads", token=reader, body={})
    assert status == 403 and err["error"] == "forbidden" and err.get("rule") is None  # default deny
    status, _, thread = call(gw.url, "POST", "/threads", token=admin, body={})
    assert status == 200 and thread["metadata"]["graphwarden_owner"] == "ada"
    # A user with no groups at all gets nothing but still authenticates.
    nobody = _token(provider, "nina", [])
    assert call(gw.url, "GET", "/info", token=nobody)[0] == 403


def test_no_credential_is_401_with_challenge(gw: GatewayHandle) -> None:
    status, headers, err = call(gw.url, "GET", "/info")
    assert status == 401 and err["error"] == "unauthenticated"
    assert headers["www-authenticate"].startswith('Bearer realm="graphwarden"')
    status, headers, _ = call(gw.url, "GET", "/info", headers={"authorization": "Basic YTpi"})
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    # Unknown routes are not revealed to anonymous callers either.
    assert call(gw.url, "POST", "/internal/truncate")[0] == 401
    # The gateway's own health endpoints stay open.
    assert call(gw.url, "GET", "/healthz")[0] == 200


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _reason(gw: GatewayHandle, token: str) -> str:
    status, headers, err = call(gw.url, "GET", "/info", token=token)
    assert status == 401, (status, err)
    assert 'error="invalid_token"' in headers["www-authenticate"]
    return str(err["reason"])


def test_bad_tokens_are_rejected(gw: GatewayHandle, provider: Provider) -> None:
    roles = {"realm_access": {"roles": ["admin"]}}
    now = int(time.time())
    # The provider's own key signs all of these: only the claims are wrong.
    assert call(gw.url, "GET", "/info", token=provider.forge(roles))[0] == 200  # control
    assert "expired" in _reason(gw, provider.forge({**roles, "exp": now - 60, "iat": now - 120}))
    assert "not valid yet" in _reason(gw, provider.forge({**roles, "nbf": now + 120}))
    assert "not valid yet" in _reason(gw, provider.forge({**roles, "iat": now + 120}))
    assert "issuer" in _reason(gw, provider.forge({**roles, "iss": "http://127.0.0.1:1"}))
    assert "audience" in _reason(gw, provider.forge({**roles, "aud": "someone-else"}))
    assert "exp" in _reason(gw, provider.forge({**roles, "exp": None}))
    # alg none, with and without a signature part.
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'iss': provider.issuer, 'aud': 'graphwarden', 'sub': 'x', 'exp': now + 60, 'iat': now, **roles})}."
    assert "algorithm" in _reason(gw, unsigned)
    # HS256 keyed with the provider's public key (the classic confusion attack).
    public_pem = provider.public_key_pem()
    payload = _b64({"iss": provider.issuer, "aud": "graphwarden", "sub": "x", "exp": now + 60, "iat": now, **roles})
    import hashlib
    import hmac as _hmac
    hs_header = _b64({"alg": "HS256", "typ": "JWT"})
    sig = base64.urlsafe_b64encode(_hmac.new(public_pem, f"{hs_header}.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    assert "algorithm" in _reason(gw, f"{hs_header}.{payload}.{sig}")
    # Unknown kid and a foreign key.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "unknown key" in _reason(gw, provider.forge(roles, key=other, headers={"kid": "not-published"}))
    assert "signature" in _reason(gw, provider.forge(roles, key=other))
    # Tampered payload: a valid token with its groups changed.
    good = _token(provider, "tom", ["reader"])
    h, p, s = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["realm_access"] = {"roles": ["admin"]}
    assert "signature" in _reason(gw, f"{h}.{_b64(claims)}.{s}")
    assert "malformed" in _reason(gw, "not-a-jwt")


def test_key_rotation_is_followed_and_refresh_is_rate_limited(gw: GatewayHandle, provider: Provider) -> None:
    before = _token(provider, "rosa", ["admin"])
    assert call(gw.url, "GET", "/info", token=before)[0] == 200
    provider.rotate_key()
    time.sleep(0.6)  # past jwks_min_refresh_interval_s
    hits = provider.jwks_hits
    after = _token(provider, "rosa", ["admin"])
    assert call(gw.url, "GET", "/info", token=after)[0] == 200  # new key fetched without restart
    assert provider.jwks_hits == hits + 1
    # A burst of tokens naming unknown kids triggers at most one more fetch.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    hits = provider.jwks_hits
    for i in range(8):
        _reason(gw, provider.forge({"realm_access": {"roles": ["admin"]}}, key=other, headers={"kid": f"k{i}"}))
    assert provider.jwks_hits <= hits + 1


def test_identity_header_reaches_upstream_and_cannot_be_smuggled(gw: GatewayHandle, provider: Provider) -> None:
    admin = _token(provider, "ada", ["admin"])
    smuggle = {"x-graphwarden-subject": "root", "x-graphwarden-groups": "admin", "x-user-id": "root",
               "x-api-key": "gwk_000000000000_" + "a" * 40}
    # Two credentials are refused outright.
    assert call(gw.url, "POST", "/threads", token=admin, body={}, headers=smuggle)[0] == 401
    del smuggle["x-api-key"]
    status, _, thread = call(gw.url, "POST", "/threads", token=admin, body={"metadata": {"graphwarden_owner": "root"}},
                             headers=smuggle)
    assert status == 200 and thread["metadata"]["graphwarden_owner"] == "ada"


def test_identity_headers_upstream_are_the_gateways(loop_thread: LoopThread, fake_upstream: object, provider: Provider,
                                                   tmp_path: Path) -> None:
    """The fake upstream echoes the headers it receives on /ok (meta.ok)."""
    config = make_config(
        f"http://127.0.0.1:{fake_upstream.port}",  # type: ignore[attr-defined]
        state={"dir": str(tmp_path)},
        identity={"oidc": [{"issuer": provider.issuer, "audience": ["graphwarden"], "groups_claim": "realm_access.roles"}],
                  "upstream_subject_header": "x-graphwarden-subject", "upstream_groups_header": "x-graphwarden-groups"},
        policy={"file": None},
    )
    handle = start(loop_thread, config, build_guard(config))
    try:
        token = _token(provider, "ada", ["admin", "user"])
        smuggle = {"x-graphwarden-subject": "root", "x-graphwarden-groups": "admin", "x-user-id": "root",
                   "x-auth-scheme": "langsmith", "cookie": "s=1"}
        status, _, echo = call(handle.url, "GET", "/ok", token=token, headers=smuggle)
        assert status == 200, echo
        pairs = [(k.lower(), v) for k, v in echo["headers"]]
        seen = dict(pairs)
        assert seen["x-graphwarden-subject"] == "ada"
        assert seen["x-graphwarden-groups"] == "admin,user"
        for name in ("authorization", "x-user-id", "x-auth-scheme", "cookie"):
            assert name not in seen
        assert [k for k, _ in pairs].count("x-graphwarden-subject") == 1
    finally:
        handle.drain(1)


def test_forwarding_the_identity_header_is_a_config_error(provider: Provider, tmp_path: Path) -> None:
    from graphwarden.errors import ConfigError

    config = make_config("http://127.0.0.1:9", state={"dir": str(tmp_path)},
                         identity={"upstream_subject_header": "x-graphwarden-subject"},
                         upstream={"url": "http://127.0.0.1:9", "forward_x_headers": ["x-graphwarden-*"]})
    with pytest.raises(ConfigError) as err:
        build_guard(config)
    assert err.value.path == "upstream.forward_x_headers"


def test_policy_file_hot_reload_keeps_previous_on_error(gw: GatewayHandle, provider: Provider) -> None:
    guard = gw.gateway.guard
    path = Path(guard.policies.path)
    reader = _token(provider, "rita", ["reader"])
    original = path.read_text()
    try:
        path.write_text(original.replace('"meta.info", ', ""))
        time.sleep(0.3)  # past reload_poll_s: the changed file is picked up without a signal
        assert call(gw.url, "GET", "/info", token=reader)[0] == 403
        path.write_text("[[rules]]\nid = 'broken'\neffect = 'maybe'\n")
        guard.policies.request_reload()
        assert call(gw.url, "GET", "/info", token=reader)[0] == 403  # previous policy kept
        assert "effect" in (guard.policies.last_error or "")
    finally:
        path.write_text(original)
        guard.policies.request_reload()
    assert call(gw.url, "GET", "/info", token=reader)[0] == 200


def test_scheduled_refresh_and_several_issuers(provider: Provider) -> None:
    from graphwarden.config import OidcIssuerConfig
    from graphwarden.identity.oidc import OidcVerifier, TokenRejected

    second = Provider()
    try:
        verifier = OidcVerifier([
            OidcIssuerConfig(issuer=provider.issuer, audience=["graphwarden"], jwks_refresh_s=0.2, subject_prefix="a:"),
            OidcIssuerConfig(issuer=second.issuer, audience=["graphwarden"], subject_prefix="b:",
                             groups_claim="https://example.com/groups"),
        ])

        async def scenario() -> None:
            p1 = await verifier.verify(provider.login("sam", {"groups": ["user"]}))
            assert (p1.subject, p1.groups, p1.auth_method) == ("a:sam", ("user",), "oidc")
            p2 = await verifier.verify(second.login("sam", {"https://example.com/groups": ["auditor"]}))
            assert (p2.subject, p2.groups) == ("b:sam", ("auditor",))
            # A token claiming the second issuer but signed with the first one's key.
            forged = provider.forge({"iss": second.issuer, "sub": "sam"})
            with pytest.raises(TokenRejected):
                await verifier.verify(forged)
            hits = provider.jwks_hits
            await asyncio.sleep(0.3)  # past jwks_refresh_s
            await verifier.verify(provider.login("sue", {"groups": ["user"]}))
            await asyncio.sleep(0.3)  # the refresh runs in the background
            assert provider.jwks_hits == hits + 1

        asyncio.run(scenario())
    finally:
        second.close()
