"""Service API keys: `gwk_<id>_<secret>`, shown once, stored as a SHA-256 hash in SQLite.

The secret is 32 random bytes, so a fast hash is enough (no password stretching needed: there is
nothing to guess). The key id before the secret locates the row; the hash is compared in
constant time. Revocation sets `revoked_at`; a running gateway notices within
`identity.api_key_cache_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

KEY_PREFIX = "gwk_"
_ID_HEX_CHARS = 12
_KEY_RE = re.compile(r"gwk_([0-9a-f]{12})_[A-Za-z0-9_-]{32,128}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    subject TEXT NOT NULL,
    groups TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    revoked_at REAL
)
"""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    subject: str
    groups: tuple[str, ...]
    description: str
    created_at: float
    revoked_at: float | None
    hash: str = ""


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    m = _KEY_RE.fullmatch(key)
    return m.group(1) if m else None


class KeyStore:
    """The api_keys table of `<state.dir>/keys.sqlite3`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=2000")
        self._db.execute(_SCHEMA)

    @classmethod
    def for_state_dir(cls, state_dir: str | Path) -> KeyStore:
        return cls(Path(state_dir) / "keys.sqlite3")

    def close(self) -> None:
        self._db.close()

    def create(self, subject: str, groups: tuple[str, ...], description: str = "") -> tuple[str, ApiKeyRecord]:
        """Create a key; returns the full key (shown once) and its record."""
        if not subject or any(c.isspace() for c in subject):
            raise ValueError("subject must be a non-empty name without spaces")
        for g in groups:
            if not g or "," in g or any(c.isspace() for c in g):
                raise ValueError(f"group {g!r} must be non-empty, without spaces or commas")
        key_id = secrets.token_hex(_ID_HEX_CHARS // 2)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(key_id, subject, tuple(groups), description, time.time(), None, _hash(key))
        self._db.execute(
            "INSERT INTO api_keys (key_id, hash, subject, groups, description, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, record.hash, subject, json.dumps(list(groups)), description, record.created_at),
        )
        return key, record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        # A short-lived connection per lookup (only on cache misses): a long-lived one was seen
        # to keep reading an old WAL snapshot, missing revocations made by `graphwarden keys`.
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            rows = db.execute(
                "SELECT key_id, subject, groups, description, created_at, revoked_at, hash FROM api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchall()
        finally:
            db.close()
        if not rows:
            return None
        row = rows[0]
        return ApiKeyRecord(row[0], row[1], tuple(json.loads(row[2])), row[3], row[4], row[5], row[6])

    def list(self) -> list[ApiKeyRecord]:
        rows = self._db.execute(
            "SELECT key_id, subject, groups, description, created_at, revoked_at FROM api_keys ORDER BY created_at"
        ).fetchall()
        return [ApiKeyRecord(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]) for r in rows]

    def revoke(self, key_id: str) -> bool:
        key_id = key_id.removeprefix(KEY_PREFIX).split("_", 1)[0]
        cur = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
        )
        return cur.rowcount > 0


class ApiKeyVerifier:
    """Checks presented keys against the store, caching rows for `cache_s` seconds."""

    def __init__(self, store: KeyStore, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        self._cache: dict[str, tuple[ApiKeyRecord | None, float]] = {}

    def verify(self, key: str) -> ApiKeyRecord | None:
        key_id = parse_key(key)
        if key_id is None:
            return None
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is None or now - hit[1] > self.cache_s:
            record = self.store.get(key_id)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = (record, now)
        else:
            record = hit[0]
        if record is None or record.revoked_at is not None:
            return None
        if not hmac.compare_digest(record.hash, _hash(key)):
            return None
        return record


__all__ = ["ApiKeyRecord", "ApiKeyVerifier", "KEY_PREFIX", "KeyStore", "parse_key"]
