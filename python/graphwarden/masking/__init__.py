"""Masking of PII and secrets: the catalogue (TOML) and the native engine (Rust, Hyperscan).

    m = Masker.default()                  # the catalogue shipped with graphwarden
    m = Masker.from_file("ops.toml")      # an operator file merged over it
    m.mask(b"...") -> bytes               # block mode
    m.mask_json(b"{...}") -> bytes        # the document searched with its strings decoded
                                          # ("key": "value" secrets, card numbers as numbers)
    m.findings(b"...") -> [(entity, start, end)]
    s = m.stream(); s.feed(b"..."); s.finish()

An operator catalogue has the same shape as `catalogue.toml`:

    version = 1
    hash_key = "env:GRAPHWARDEN_MASK_KEY"   # keyed-hash action; default: random per process
    enable = ["ipv4"]                       # switch default entries on ...
    disable = ["phone"]                     # ... or off
    [[entries]]                             # a new id adds an entry (after the defaults);
    id = "email"                            # an existing id overrides the given fields
    action = "hash"
    [[entries]]
    id = "employee_id"
    entity = "EMPLOYEE_ID"
    patterns = ['\\bEMP-\\d{6}\\b']
    max_len = 10

A pattern that does not compile raises ValueError naming the entry and the library's message.
"""

from __future__ import annotations

import functools
import os
import secrets
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graphwarden import _native

CATALOGUE = Path(__file__).with_name("catalogue.toml")

_ENTRY_KEYS = {
    "id", "entity", "kind", "enabled", "patterns", "validator", "action", "group", "max_len",
    "prefixes", "positive", "negative", "description", "prefilter",
}
_VALIDATORS = {"none", "luhn", "ssn", "iban", "basic_auth"}
_ACTIONS = {"label", "redact", "partial", "hash", "drop"}


@dataclass(frozen=True)
class Entry:
    """One catalogue entry."""

    id: str
    entity: str
    patterns: tuple[str, ...]
    max_len: int
    kind: str = "pii"
    enabled: bool = True
    validator: str = "none"
    action: str = "label"
    group: int = 0
    prefixes: tuple[str, ...] = ()
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    description: str = ""
    #: A cheaper Hyperscan expression matching wherever the patterns do (a superset).
    prefilter: str | None = None


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[Entry, ...]
    hash_key: bytes = field(default=b"", repr=False)


def _entry(raw: dict[str, Any], where: str, base: Entry | None = None) -> Entry:
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; valid: {sorted(_ENTRY_KEYS)}")
    values: dict[str, Any] = {}
    for k, v in raw.items():
        if k in ("patterns", "prefixes", "positive", "negative"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"{where}.{k}: expected a list of strings")
            values[k] = tuple(x.lower() for x in v) if k == "prefixes" else tuple(v)
        elif k in ("max_len", "group"):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{where}.{k}: expected a non-negative whole number")
            values[k] = v
        elif k == "enabled":
            if not isinstance(v, bool):
                raise ValueError(f"{where}.enabled: expected true or false")
            values[k] = v
        else:
            if not isinstance(v, str):
                raise ValueError(f"{where}.{k}: expected a string")
            values[k] = v
    if base is not None:
        entry = replace(base, **values)
    else:
        for required in ("id", "entity", "patterns", "max_len"):
            if required not in values:
                raise ValueError(f"{where}: missing {required!r}")
        entry = Entry(**values)
    if entry.validator not in _VALIDATORS:
        raise ValueError(f"{where}.validator: {entry.validator!r} is not one of {sorted(_VALIDATORS)}")
    if entry.action not in _ACTIONS:
        raise ValueError(f"{where}.action: {entry.action!r} is not one of {sorted(_ACTIONS)}")
    if not entry.patterns:
        raise ValueError(f"{where}.patterns: give at least one pattern")
    if entry.max_len < 1:
        raise ValueError(f"{where}.max_len: must be at least 1")
    return entry


def _hash_key(spec: str | None, where: str) -> bytes:
    if spec is None:
        return b""
    if spec.startswith("env:"):
        value = os.environ.get(spec[4:])
        if value is None:
            raise ValueError(f"{where}: environment variable {spec[4:]} is not set")
    elif spec.startswith("file:"):
        value = Path(spec[5:]).read_text().strip()
    else:
        value = spec
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{where}: the hash key must be 64 hex digits") from None
    if len(key) != 32:
        raise ValueError(f"{where}: the hash key must be 64 hex digits (32 bytes)")
    return key


def parse_catalogue(text: str, where: str, base: Catalogue | None = None) -> Catalogue:
    """Parse catalogue TOML; with `base`, the text is an operator file merged over it."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"version", "hash_key", "enable", "disable", "entries"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
    if doc.get("version", 1) != 1:
        raise ValueError(f"{where}: version must be 1")
    entries: list[Entry] = list(base.entries) if base else []
    by_id = {e.id: i for i, e in enumerate(entries)}
    raw_entries = doc.get("entries", [])
    if not isinstance(raw_entries, list):
        raise ValueError(f"{where}: entries must be an array of tables ([[entries]])")
    for n, raw in enumerate(raw_entries):
        spot = f"{where}: entries[{n}]" + (f" ({raw.get('id')})" if isinstance(raw, dict) and raw.get("id") else "")
        if not isinstance(raw, dict) or "id" not in raw:
            raise ValueError(f"{spot}: every entry needs an id")
        if raw["id"] in by_id:
            if base is None:
                raise ValueError(f"{spot}: duplicate id {raw['id']!r}")
            entries[by_id[raw["id"]]] = _entry(raw, spot, entries[by_id[raw["id"]]])
        else:
            by_id[raw["id"]] = len(entries)
            entries.append(_entry(raw, spot))
    for key, flag in (("enable", True), ("disable", False)):
        names = doc.get(key, [])
        if not isinstance(names, list):
            raise ValueError(f"{where}.{key}: expected a list of entry ids")
        for name in names:
            if name not in by_id:
                raise ValueError(f"{where}.{key}: no entry {name!r}; known: {sorted(by_id)}")
            entries[by_id[name]] = replace(entries[by_id[name]], enabled=flag)
    hash_key = _hash_key(doc.get("hash_key"), f"{where}.hash_key") or (base.hash_key if base else b"")
    return Catalogue(tuple(entries), hash_key)


@functools.cache
def default_catalogue() -> Catalogue:
    return parse_catalogue(CATALOGUE.read_text(encoding="utf-8"), str(CATALOGUE))


class Masker:
    """A compiled catalogue. Thread-safe; scans release the GIL for large inputs."""

    # `mask` and `mask_json` are the native engine's own methods, bound per instance: the
    # request path calls them for every body and SSE event, and a Python method around each
    # call cost a frame per call.
    #: Masked bytes (the input object itself when nothing matched).
    mask: Callable[[bytes], bytes]
    #: JSON-aware `mask`: the document searched with its strings decoded in place, the spans
    #: applied to the strings and numbers they overlap (docs/MASKING.md, "JSON"); ValueError
    #: when not JSON.
    mask_json: Callable[[bytes], bytes]

    def __init__(self, catalogue: Catalogue, *, key: bytes | None = None, source: str = "",
                 digest: str = "") -> None:
        self.catalogue = catalogue
        self.entries = tuple(e for e in catalogue.entries if e.enabled)
        # the keyed-hash action's key: the catalogue's, else `key` (a reload keeps the running
        # one, so that a value hashes to the same token before and after), else a random one
        self._key = catalogue.hash_key or key or secrets.token_bytes(32)
        #: Where the catalogue came from (a file, or "<default>") and the BLAKE3 digest of its
        #: bytes, for the audit trail.
        self.source = source
        self.digest = digest
        self._engine = _native.MaskEngine(
            [(e.id, e.entity, list(e.patterns), e.validator, e.action, e.group, e.max_len, list(e.prefixes),
              e.prefilter) for e in self.entries],
            self._key,
        )
        self.mask = self._engine.mask
        self.mask_json = self._engine.mask_json

    @classmethod
    @functools.cache
    def default(cls) -> Masker:
        return cls(default_catalogue(), source="<default>", digest=_native.blake3_hex(CATALOGUE.read_bytes()))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, key: bytes | None = None) -> Masker:
        """The operator catalogue at `path` merged over the default one. ValueError (naming the
        file, and the entry when one is at fault) when it cannot be read, parsed or compiled."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ValueError(f"{p}: cannot read the catalogue: {exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{p}: the catalogue is not UTF-8: {exc}") from None
        return cls(parse_catalogue(text, str(p), base=default_catalogue()), key=key, source=str(p),
                   digest=_native.blake3_hex(data))

    def adopt(self, other: Masker) -> None:
        """Takes `other`'s catalogue and engine in place (a reload): every holder of this
        object masks with them from its next call on. Streams and SSE splitters made before
        keep the engine they were made from, so a stream is masked by one catalogue throughout."""
        self.catalogue, self.entries, self._key = other.catalogue, other.entries, other._key
        self.source, self.digest = other.source, other.digest
        self._engine = other._engine
        self.mask = other._engine.mask
        self.mask_json = other._engine.mask_json

    def findings(self, data: bytes) -> list[tuple[str, int, int]]:
        return self._engine.findings(data)

    def matches(self, data: bytes) -> list[tuple[str, int, int]]:
        """Every validated match before merging, as (entry id, start, end)."""
        return self._engine.matches(data)

    def simd(self) -> str:
        """The vector instructions the engine's passes use on this CPU (for benchmark reports)."""
        return self._engine.simd()

    def stream(self) -> _native.MaskStream:
        return self._engine.stream()

    def native_sse_rewriter(self, routed: Sequence[bytes]) -> _native.SseSplitter:
        """An SSE splitter that masks every non-routed event's data natively (see evidence)."""
        return self._engine.sse_splitter(list(routed))


__all__ = ["CATALOGUE", "Catalogue", "Entry", "Masker", "default_catalogue", "parse_catalogue"]
