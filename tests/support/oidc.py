"""A real OpenID provider (oidc-provider-mock, a Flask/authlib app) on a local port, with
helpers to log users in through the authorization-code flow and to reach its signing key."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

import flask
import jwt
import oidc_provider_mock
import werkzeug.serving
from authlib import jose


class Provider:
    def __init__(self) -> None:
        self.app = oidc_provider_mock.app()
        self.server = werkzeug.serving.make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self.server.server_port
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.jwks_hits = 0
        orig = self.app.view_functions["oidc-provider-mock.jwks"]

        def counting() -> Any:
            self.jwks_hits += 1
            return orig()

        self.app.view_functions["oidc-provider-mock.jwks"] = counting

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the provider's state ---------------------------------------------------------------
    def _storage(self) -> Any:
        with self.app.test_request_context("/"):
            self.app.preprocess_request()
            return flask.g.oidc_provider_mock_storage

    def rotate_key(self) -> None:
        self._storage().jwk = jose.RSAKey.generate_key(is_private=True)

    def private_key_pem(self) -> bytes:
        key = self._storage().jwk
        pem: bytes = key.as_pem(is_private=True)
        return pem

    def public_key_pem(self) -> bytes:
        pem: bytes = self._storage().jwk.as_pem(is_private=False)
        return pem

    # -- tokens ------------------------------------------------------------------------------
    def login(self, sub: str, claims: dict[str, Any], client_id: str = "graphwarden") -> str:
        """An ID token issued by the provider through the authorization-code flow."""
        req = urllib.request.Request(
            f"{self.issuer}/users/{urllib.parse.quote(sub)}", data=json.dumps(claims).encode(), method="PUT",
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(req).read()
        q = urllib.parse.urlencode({"client_id": client_id, "redirect_uri": "http://127.0.0.1/cb",
                                    "response_type": "code", "scope": "openid profile", "state": "s"})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", "/oauth2/authorize?" + q, body=urllib.parse.urlencode({"sub": sub}),
                  headers={"content-type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        loc = r.getheader("location") or ""
        r.read()
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["code"][0]
        c.request("POST", "/oauth2/token", body=urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1/cb",
            "client_id": client_id, "client_secret": "secret"}),
            headers={"content-type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        token: str = body["id_token"]
        return token

    def forge(self, claims: dict[str, Any], *, key: Any = None, alg: str = "RS256", headers: dict[str, Any] | None = None) -> str:
        """A token signed with the provider's own private key (or `key`) carrying `claims`."""
        now = int(time.time())
        full = {"iss": self.issuer, "aud": "graphwarden", "sub": "mallory", "iat": now, "exp": now + 300, **claims}
        full = {k: v for k, v in full.items() if v is not None}
        return jwt.encode(full, key if key is not None else self.private_key_pem(), algorithm=alg, headers=headers)
