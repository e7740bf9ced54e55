"""OIDC bearer-token verification: discovery, a JWKS cache that follows key rotation, and pyjwt.

Per issuer:
- the JWKS is fetched on first use (after discovery), refreshed in the background once older
  than `jwks_refresh_s`, and refreshed at once when a token names an unknown `kid` (or, for
  providers that omit `kid`, when no cached key verifies it), at most once per
  `jwks_min_refresh_interval_s`; concurrent requests share one fetch;
- fetches run in a worker thread (`asyncio.to_thread`), never on the event loop;
- the algorithm comes from the token header but must be in the issuer's allow-list (asymmetric
  only, checked at config load) and match the key type, so neither `none` nor an HMAC check keyed
  with a public key can pass;
- `iss`, `aud`, `exp`, `iat` are required and `nbf` checked, all with `leeway_s`.

Verified tokens are cached until they expire (bounded), so a client reusing a token pays one
dict lookup instead of a signature check.
"""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import orjson

from graphwarden.config import OidcIssuerConfig
from graphwarden.guard import Principal
from graphwarden.ops import get_logger

log = get_logger("identity")

_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_MAX_JWKS_BYTES = 1024 * 1024
_TOKEN_CACHE_MAX = 10_000


class TokenRejected(Exception):
    """The token is not acceptable; the message is safe to show the caller."""


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by exact name (covers namespaced URL claims) or by dotted path."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _b64json(segment: str) -> Any:
    pad = "=" * (-len(segment) % 4)
    return orjson.loads(base64.urlsafe_b64decode(segment + pad))


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS without verifying anything."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("malformed token")
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, orjson.JSONDecodeError):
        raise TokenRejected("malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRejected("malformed token")
    return header, claims


def _http_get_json(url: str, timeout_s: float) -> Any:
    req = urllib.request.Request(url, headers={"accept": "application/json", "user-agent": "graphwarden"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - configured URL
        data = resp.read(_MAX_JWKS_BYTES + 1)
    if len(data) > _MAX_JWKS_BYTES:
        raise ValueError(f"{url} answered more than {_MAX_JWKS_BYTES} bytes")
    return orjson.loads(data)


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    kty: str
    alg: str | None
    key: Any


class IssuerVerifier:
    """Verifies tokens of one issuer."""

    def __init__(self, config: OidcIssuerConfig) -> None:
        self.config = config
        self.issuer = config.issuer
        self._algorithms = frozenset(config.algorithms)
        self._jwks_uri = config.jwks_uri
        self._keys: list[_Key] = []
        self._by_kid: dict[str, _Key] = {}
        self._fetched_at = 0.0  # monotonic time of the last successful fetch
        self._attempted_at = -1e9  # of the last attempt (rate limit)
        self._inflight: asyncio.Future[None] | None = None
        self._tokens: dict[str, tuple[Principal, float]] = {}
        self.refreshes = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- JWKS -------------------------------------------------------------------------------
    def _fetch(self) -> list[_Key]:
        uri = self._jwks_uri
        if uri is None:
            meta = _http_get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration", self.config.http_timeout_s)
            if not isinstance(meta, dict) or meta.get("issuer") != self.issuer:
                raise ValueError(f"discovery document of {self.issuer} names issuer {meta.get('issuer') if isinstance(meta, dict) else None!r}")
            uri = meta.get("jwks_uri")
            if not isinstance(uri, str):
                raise ValueError("discovery document has no jwks_uri")
            self._jwks_uri = uri
        doc = _http_get_json(uri, self.config.http_timeout_s)
        keys: list[_Key] = []
        for jwk in doc.get("keys", []) if isinstance(doc, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            kty = jwk.get("kty")
            if kty not in ("RSA", "EC", "OKP"):
                continue  # "oct" (shared secrets) never verifies anything here
            try:
                parsed = jwt.PyJWK(jwk)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError):
                log.warning("skipping unusable JWKS key", extra={"fields": {"issuer": self.issuer, "kid": jwk.get("kid")}})
                continue
            keys.append(_Key(jwk.get("kid"), kty, jwk.get("alg"), parsed.key))
        return keys

    async def refresh(self, *, force: bool) -> None:
        """Fetch the JWKS (one fetch at a time; `force` still obeys the minimum interval)."""
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return
        now = time.monotonic()
        if force and now - self._attempted_at < self.config.jwks_min_refresh_interval_s:
            return
        self._attempted_at = now
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = fut
        try:
            keys = await asyncio.to_thread(self._fetch)
            self._keys = keys
            self._by_kid = {k.kid: k for k in keys if k.kid}
            self._fetched_at = time.monotonic()
            self.refreshes += 1
            log.info("JWKS loaded", extra={"fields": {"issuer": self.issuer, "keys": len(keys)}})
        except Exception as exc:  # network, JSON, discovery mismatch: keep the old keys
            log.error("JWKS fetch failed", extra={"fields": {"issuer": self.issuer, "error": str(exc)}})
        finally:
            self._inflight = None
            fut.set_result(None)

    def _schedule_refresh(self) -> None:
        if self._inflight is None and time.monotonic() - self._fetched_at > self.config.jwks_refresh_s:
            task = asyncio.get_running_loop().create_task(self.refresh(force=False))
            self._tasks.add(task)  # keep a reference until done (the loop only holds weak ones)
            task.add_done_callback(self._tasks.discard)

    def _candidates(self, kid: str | None, alg: str) -> list[_Key]:
        kty = _KTY_FOR_ALG.get(alg[:2])
        if kid is not None:
            key = self._by_kid.get(kid)
            found = [key] if key is not None else []
        else:
            found = self._keys
        return [k for k in found if k.kty == kty and (k.alg is None or k.alg == alg)]

    # -- tokens -----------------------------------------------------------------------------
    async def verify(self, token: str, header: Mapping[str, Any]) -> Principal:
        now = time.time()
        hit = self._tokens.get(token)
        if hit is not None:
            if hit[1] + self.config.leeway_s >= now:
                return hit[0]
            del self._tokens[token]
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenRejected(f"token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed kid")
        if not self._keys and self._fetched_at == 0.0:
            await self.refresh(force=False)
        else:
            self._schedule_refresh()
        candidates = self._candidates(kid, alg)
        if not candidates:
            await self.refresh(force=True)  # rotation: a new kid appeared at the provider
            candidates = self._candidates(kid, alg)
            if not candidates:
                raise TokenRejected("token signed with an unknown key")
        try:
            claims = self._decode(token, alg, candidates)
        except jwt.InvalidSignatureError:
            if kid is not None:
                raise TokenRejected("token signature is invalid") from None
            await self.refresh(force=True)  # provider without kids rotated its key
            try:
                claims = self._decode(token, alg, self._candidates(None, alg))
            except jwt.InvalidSignatureError:
                raise TokenRejected("token signature is invalid") from None
        principal = self._principal(claims)
        exp = claims.get("exp")
        if isinstance(exp, (int, float)):
            if len(self._tokens) >= _TOKEN_CACHE_MAX:
                self._tokens.clear()
            self._tokens[token] = (principal, float(exp))
        return principal

    def _decode(self, token: str, alg: str, candidates: list[_Key]) -> dict[str, Any]:
        cfg = self.config
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.key,
                    algorithms=[alg],
                    audience=cfg.audience,
                    issuer=cfg.issuer,
                    leeway=cfg.leeway_s,
                    options={"require": ["exp", "iat", "iss", "aud"], "verify_iat": True},
                )
                return claims
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise TokenRejected("token has expired") from None
            except jwt.ImmatureSignatureError:
                raise TokenRejected("token is not valid yet (nbf/iat in the future)") from None
            except jwt.InvalidAudienceError:
                raise TokenRejected("token audience is not accepted") from None
            except jwt.InvalidIssuerError:
                raise TokenRejected("token issuer is not accepted") from None
            except jwt.MissingRequiredClaimError as exc:
                raise TokenRejected(f"token lacks the {exc.claim} claim") from None
            except jwt.InvalidTokenError as exc:
                raise TokenRejected(f"token is invalid: {exc}") from None
        raise jwt.InvalidSignatureError("no key verifies the signature")

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        cfg = self.config
        subject = claim_at(claims, cfg.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise TokenRejected(f"token has no {cfg.subject_claim} claim")
        raw_groups = claim_at(claims, cfg.groups_claim)
        if isinstance(raw_groups, str):
            groups: tuple[str, ...] = tuple(raw_groups.split())
        elif isinstance(raw_groups, list):
            groups = tuple(g for g in raw_groups if isinstance(g, str))
        else:
            groups = ()
        name = claim_at(claims, cfg.name_claim)
        jti = claims.get("jti")
        return Principal(
            subject=cfg.subject_prefix + subject,
            groups=groups,
            display_name=name if isinstance(name, str) else None,
            auth_method="oidc",
            token_id=jti if isinstance(jti, str) else None,
        )


class OidcVerifier:
    """Routes a token to its issuer's verifier by the (unverified) `iss` claim."""

    def __init__(self, issuers: list[OidcIssuerConfig]) -> None:
        self.issuers = {c.issuer: IssuerVerifier(c) for c in issuers}
        #: token -> (principal, exp + leeway): a token seen verified skips even the header parse.
        self._seen: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        hit = self._seen.get(token)
        if hit is not None:
            if hit[1] >= time.time():
                return hit[0]
            del self._seen[token]
        header, claims = peek(token)
        iss = claims.get("iss")
        verifier = self.issuers.get(iss) if isinstance(iss, str) else None
        if verifier is None:
            raise TokenRejected("token issuer is not accepted")
        principal = await verifier.verify(token, header)
        exp = claims.get("exp")
        if isinstance(exp, (int, float)):
            if len(self._seen) >= _TOKEN_CACHE_MAX:
                self._seen.clear()
            self._seen[token] = (principal, float(exp) + verifier.config.leeway_s)
        return principal


__all__ = ["IssuerVerifier", "OidcVerifier", "TokenRejected", "claim_at", "peek"]
