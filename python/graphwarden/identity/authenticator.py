"""Who is calling: the request's credential -> a verified `Principal`, or a 401 `Reject`.

Credentials accepted: `Authorization: Bearer <OIDC JWT>`, `Authorization: Bearer gwk_...` or the
API-key header (default `x-api-key`) carrying a `gwk_...` service key. Exactly one credential
per request; anything else is 401 with an RFC 6750 `WWW-Authenticate` challenge. The gateway's
header hygiene strips these headers before the upstream.
"""

from __future__ import annotations

from pathlib import Path

from graphwarden.config import GatewayConfig
from graphwarden.guard import Principal, Reject, RequestInfo
from graphwarden.identity.keys import KEY_PREFIX, ApiKeyVerifier, KeyStore
from graphwarden.identity.oidc import OidcVerifier, TokenRejected


class Authenticator:
    def __init__(self, config: GatewayConfig, *, key_store: KeyStore | None = None) -> None:
        ident = config.identity
        self.realm = ident.realm
        self._api_key_header = ident.api_key_header.encode("ascii")
        self.oidc = OidcVerifier(ident.oidc) if ident.oidc else None
        self.keys: ApiKeyVerifier | None = None
        if ident.api_keys:
            store = key_store or KeyStore.for_state_dir(Path(config.state.dir))
            self.keys = ApiKeyVerifier(store, ident.api_key_cache_s)
        self._challenge = f'Bearer realm="{self.realm}"'.encode()

    @property
    def enabled(self) -> bool:
        return self.oidc is not None or self.keys is not None

    def reject(self, reason: str, *, invalid: bool) -> Reject:
        challenge = self._challenge
        if invalid:
            challenge += b', error="invalid_token", error_description="' + reason.replace('"', "'").encode() + b'"'
        return Reject(401, "unauthenticated", reason, headers=((b"www-authenticate", challenge),))

    async def authenticate(self, info: RequestInfo) -> Principal | Reject:
        bearer: bytes | None = None
        api_key: bytes | None = None
        seen = 0
        for name, value in info.headers:
            if name == b"authorization":
                bearer = value
                seen += 1
            elif name == self._api_key_header:
                api_key = value
                seen += 1
        if seen == 0:
            return self.reject("authentication required", invalid=False)
        if seen > 1:
            return self.reject("send exactly one credential", invalid=True)
        if bearer is not None:
            scheme, _, token_b = bearer.strip().partition(b" ")
            if scheme.lower() != b"bearer" or not token_b.strip():
                return self.reject("use the Bearer scheme", invalid=True)
            token = token_b.strip().decode("latin-1")
        else:
            assert api_key is not None
            token = api_key.strip().decode("latin-1")
            if not token.startswith(KEY_PREFIX):
                return self.reject("malformed API key", invalid=True)
        if token.startswith(KEY_PREFIX):
            if self.keys is None:
                return self.reject("API keys are not enabled", invalid=True)
            record = self.keys.verify(token)
            if record is None:
                return self.reject("unknown or revoked API key", invalid=True)
            return Principal(
                subject=record.subject, groups=record.groups, display_name=record.description or None,
                auth_method="api_key", token_id=record.key_id,
            )
        if self.oidc is None:
            return self.reject("bearer tokens are not accepted here (no OIDC issuer configured)", invalid=True)
        try:
            return await self.oidc.verify(token)
        except TokenRejected as exc:
            return self.reject(str(exc), invalid=True)


__all__ = ["Authenticator"]
