"""Gateway configuration: one TOML file decoded into typed, validated msgspec structs.

Every mistake becomes a `ConfigError` naming the key path and a one-line fix, raised before the
gateway listens. Secrets (the upstream credential) are never written in the file itself: values
of `upstream.headers` may be `env:NAME` or `file:PATH` references, resolved at start.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from graphwarden.errors import ConfigError

# Sentinel separating a validation message from its fix in errors raised by __post_init__.
_FIX = " || fix: "
_KEY = " || key: "


def _invalid(key: str, message: str, fix: str) -> ValueError:
    """A validation error for `key` of the struct being validated (msgspec adds the struct path)."""
    return ValueError(f"{key}{_KEY}{message}{_FIX}{fix}")


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class ListenConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    #: Worker processes sharing the port through SO_REUSEPORT.
    workers: int = 1
    backlog: int = 2048
    #: Connections above this are answered 503 and closed at once.
    max_connections: int = 20_000
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise _invalid("port", f"port {self.port} is out of range", "use a port between 1 and 65535")
        if not 1 <= self.workers <= 256:
            raise _invalid("workers", f"workers = {self.workers}", "use between 1 and 256 workers")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _invalid("tls_cert", "tls_cert and tls_key go together", "set both, or neither for plain HTTP")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise _invalid(name, f"{name} file {value!r} does not exist", "give the path of a PEM file")


class UpstreamConfig(_Section):
    #: The LangGraph agent server. http:// or https://, no path.
    url: str = "http://127.0.0.1:2024"
    connect_timeout_s: float = 5.0
    #: From the end of the request to the response head (runs/wait can take long).
    response_timeout_s: float = 300.0
    #: Longest silence between two body chunks of a response (SSE heartbeats come every 5 s).
    read_idle_timeout_s: float = 120.0
    #: Idle keep-alive connections kept per worker.
    pool_max_idle: int = 64
    #: Below uvicorn's 5 s keep-alive so the gateway, not the server, closes idle connections.
    pool_idle_timeout_s: float = 4.0
    #: Headers the gateway adds to every upstream request (the upstream credential, e.g.
    #: x-api-key). Values: a literal, "env:NAME" or "file:PATH".
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: Client headers starting with "x-" are dropped unless they match one of these globs:
    #: langgraph-api copies every x-* request header into the run's config, where graph code
    #: may trust it.
    forward_x_headers: list[str] = msgspec.field(default_factory=list)
    verify_tls: bool = True
    ca_file: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid(
                "url",
                f"upstream url {self.url!r} is not an http(s) URL",
                'write it like "http://127.0.0.1:2024"',
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise _invalid("url", f"upstream url {self.url!r} has a path", "give scheme, host and port only")
        for field in ("connect_timeout_s", "response_timeout_s", "read_idle_timeout_s"):
            if getattr(self, field) <= 0:
                raise _invalid(field, f"{field} must be positive", "use a number of seconds above 0")
        for name, value in self.headers.items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
                raise _invalid(f"headers.{name}", f"header name {name!r} is not a valid token", "use e.g. x-api-key")
            if value.startswith("file:") and not Path(value[5:]).is_file():
                raise _invalid(f"headers.{name}", f"file {value[5:]!r} does not exist", "fix the path")

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        host = urlsplit(self.url).hostname
        assert host is not None
        return host

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def authority(self) -> str:
        return urlsplit(self.url).netloc

    def resolved_headers(self) -> list[tuple[bytes, bytes]]:
        """The credential headers with env:/file: references resolved. Raises ConfigError."""
        out: list[tuple[bytes, bytes]] = []
        for name, value in self.headers.items():
            if value.startswith("env:"):
                resolved = os.environ.get(value[4:])
                if resolved is None:
                    raise ConfigError(
                        f"upstream.headers.{name}",
                        f"environment variable {value[4:]} is not set",
                        f"export {value[4:]}=... before starting the gateway",
                    )
            elif value.startswith("file:"):
                resolved = Path(value[5:]).read_text().strip()
            else:
                resolved = value
            out.append((name.lower().encode("ascii"), resolved.encode("latin-1")))
        return out


class LimitsConfig(_Section):
    #: Request line plus headers. h11's default and nginx's large_client_header_buffers are 16 KiB
    #: and 4 x 8 KiB; uvicorn relies on h11's.
    max_header_bytes: int = 16 * 1024
    #: Apache's LimitRequestFields is 100.
    max_header_count: int = 100
    #: Largest request body forwarded (nginx's default is 1 MiB; LangGraph inputs can be larger).
    max_body_bytes: int = 16 * 1024 * 1024
    #: Time allowed to send a complete request head (slowloris guard; nginx: 60 s).
    header_read_timeout_s: float = 10.0
    #: Longest silence between two chunks of a request body.
    body_read_timeout_s: float = 30.0
    #: Idle keep-alive connections are closed after this (uvicorn: 5 s, nginx: 75 s).
    keepalive_timeout_s: float = 15.0
    #: SIGTERM: in-flight requests and streams get this long to finish.
    drain_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_header_bytes < 1024:
            raise _invalid("max_header_bytes", "max_header_bytes is below 1024", "use at least 1024 (default 16384)")
        if self.max_header_count < 8:
            raise _invalid("max_header_count", "max_header_count is below 8", "use at least 8 (default 100)")
        if self.max_body_bytes < 0:
            raise _invalid("max_body_bytes", "max_body_bytes is negative", "use 0 or more bytes")
        for field in ("header_read_timeout_s", "body_read_timeout_s", "keepalive_timeout_s"):
            if getattr(self, field) <= 0:
                raise _invalid(field, f"{field} must be positive", "use a number of seconds above 0")


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: One JSON line per request on stderr.
    access_log: bool = True


class StateConfig(_Section):
    #: Embedded state: SQLite database, audit directory and keys live here by default.
    dir: str = "./graphwarden-state"


class GatewayConfig(_Section):
    listen: ListenConfig = msgspec.field(default_factory=ListenConfig)
    upstream: UpstreamConfig = msgspec.field(default_factory=UpstreamConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    approvals: "ApprovalsConfig" = msgspec.field(default_factory=lambda: ApprovalsConfig())
    audit: AuditConfig = msgspec.field(default_factory=lambda: AuditConfig())
    masking: "MaskingConfig" = msgspec.field(default_factory=lambda: MaskingConfig())
    evidence: "EvidenceConfig" = msgspec.field(default_factory=lambda: EvidenceConfig())
    #: Forward every request without identity or policy. Only for benchmarks and local
    #: experiments: the gateway logs a warning at start.
    insecure_passthrough: bool = False
    identity: "IdentityConfig" = msgspec.field(default_factory=lambda: IdentityConfig())  # --- identity / policy ---
    policy: "PolicyConfig" = msgspec.field(default_factory=lambda: PolicyConfig())  # --- identity / policy ---


_FIX_BY_TYPE = {
    "int": "write a whole number without quotes",
    "float": "write a number without quotes",
    "str": 'write a quoted string, e.g. "value"',
    "bool": "write true or false without quotes",
    "object": "write a table, e.g. [section] or { key = value }",
    "array": 'write a list, e.g. ["a", "b"]',
}


def _fields_of(path: str) -> list[str]:
    """Valid keys of the struct at a dotted path, for 'unknown key' hints."""
    node: Any = GatewayConfig
    for part in [p for p in path.split(".") if p]:
        fields = {f.name: f for f in msgspec.structs.fields(node)}
        if part not in fields:
            return []
        node = fields[part].type
        if not (isinstance(node, type) and issubclass(node, msgspec.Struct)):
            return []
    return [f.name for f in msgspec.structs.fields(node)]


def _to_config_error(exc: msgspec.ValidationError) -> ConfigError:
    text = str(exc)
    message, _, where = text.rpartition(" - at `")
    if not _:
        message, where = text, "$"
    path = where.rstrip("`").removeprefix("$").lstrip(".") or "(top level)"
    if _FIX in message:
        message, fix = message.split(_FIX, 1)
        key, _, message = message.partition(_KEY)
        full = key if path == "(top level)" else f"{path}.{key}"
        return ConfigError(full, message, fix)
    unknown = re.match(r"Object contains unknown field `(.+)`", message)
    if unknown:
        key = unknown.group(1)
        full = f"{path}.{key}" if path != "(top level)" else key
        valid = _fields_of("" if path == "(top level)" else path)
        return ConfigError(
            full, "unknown key", f"remove it or fix its spelling; valid keys here: {', '.join(valid)}"
        )
    expected = re.match(r"Expected `([a-z]+)[^`]*`", message)
    if expected and expected.group(1) in _FIX_BY_TYPE:
        return ConfigError(path, message, _FIX_BY_TYPE[expected.group(1)])
    return ConfigError(path, message, "see examples/graphwarden.toml for the expected form")


def parse_config(text: str) -> GatewayConfig:
    """Decode and validate config text. Raises ConfigError."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(file)", f"not valid TOML: {exc}", "fix the TOML syntax at that line") from None
    return convert_config(raw)


def convert_config(raw: dict[str, Any]) -> GatewayConfig:
    try:
        return msgspec.convert(raw, GatewayConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise _to_config_error(exc) from None


def load_config(path: str | os.PathLike[str] | None) -> GatewayConfig:
    """Load the config file, or the embedded defaults when `path` is None."""
    if path is None:
        return GatewayConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("(file)", f"{p} does not exist", "give the path of a TOML config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError("(file)", f"cannot read {p}: {exc}", "give a readable UTF-8 TOML file") from None
    config = parse_config(text)
    config.upstream.resolved_headers()  # env:/file: references must resolve before listening
    return config


__all__ = [
    "GatewayConfig",
    "LimitsConfig",
    "ListenConfig",
    "LoggingConfig",
    "StateConfig",
    "UpstreamConfig",
    "convert_config",
    "load_config",
    "parse_config",
]


# --- identity / policy ---
#: Signature algorithms an OIDC issuer may use. HMAC ("HS*") and "none" are never accepted: a
#: gateway only holds public keys, and an HMAC check keyed with a public key can be forged.
ASYMMETRIC_JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class OidcIssuerConfig(_Section):
    #: The `iss` value, exactly as the provider writes it (discovery is fetched from here).
    issuer: str
    #: Accepted `aud` values (the client id(s) the tokens are issued for).
    audience: list[str]
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "PS256", "ES256", "EdDSA"])
    #: Fetch `<issuer>/.well-known/openid-configuration` for `jwks_uri`.
    discovery: bool = True
    jwks_uri: str | None = None
    #: Claim paths: a top-level claim name (may contain dots, e.g. a namespaced URL claim) or a
    #: dotted path into nested objects ("realm_access.roles").
    subject_claim: str = "sub"
    groups_claim: str = "groups"
    name_claim: str = "name"
    #: Prepended to the subject (keeps subjects of several issuers apart, e.g. "corp:").
    subject_prefix: str = ""
    #: Clock skew allowed on exp / nbf / iat.
    leeway_s: float = 30.0
    #: Scheduled JWKS refresh.
    jwks_refresh_s: float = 3600.0
    #: At most one refresh per this many seconds when a token names an unknown key.
    jwks_min_refresh_interval_s: float = 30.0
    http_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid("issuer", f"issuer {self.issuer!r} is not an http(s) URL", 'write e.g. "https://idp.example.com/realms/x"')
        if not self.audience:
            raise _invalid("audience", "audience is empty", 'list the client id tokens are issued for, e.g. ["graphwarden"]')
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_JWT_ALGORITHMS]
        if bad or not self.algorithms:
            raise _invalid("algorithms", f"algorithms {bad or '[]'} not allowed", f"use asymmetric ones: {', '.join(sorted(ASYMMETRIC_JWT_ALGORITHMS))}")
        if not self.discovery and not self.jwks_uri:
            raise _invalid("jwks_uri", "discovery is off and no jwks_uri is given", "set jwks_uri or discovery = true")
        if not 0 <= self.leeway_s <= 300:
            raise _invalid("leeway_s", f"leeway_s = {self.leeway_s}", "use 0 to 300 seconds (30 is usual)")
        for name in ("jwks_refresh_s", "jwks_min_refresh_interval_s", "http_timeout_s"):
            if getattr(self, name) <= 0:
                raise _invalid(name, f"{name} must be positive", "use a number of seconds above 0")


class IdentityConfig(_Section):
    oidc: list[OidcIssuerConfig] = msgspec.field(default_factory=list)
    #: Service API keys (`graphwarden keys create`), stored hashed in <state.dir>/keys.sqlite3.
    api_keys: bool = True
    #: Header carrying an API key (also accepted as "Authorization: Bearer gwk_...").
    api_key_header: str = "x-api-key"
    #: Revocations take effect within this many seconds in a running gateway.
    api_key_cache_s: float = 5.0
    #: Headers the gateway sets upstream with the verified subject / comma-separated groups
    #: (the client's copies never pass). Off when unset.
    upstream_subject_header: str | None = None
    upstream_groups_header: str | None = None
    realm: str = "graphwarden"

    def __post_init__(self) -> None:
        for name in ("api_key_header", "upstream_subject_header", "upstream_groups_header"):
            value = getattr(self, name)
            if value is not None and not re.fullmatch(r"[a-z0-9-]+", value):
                raise _invalid(name, f"header name {value!r}", "use a lower-case header name such as x-graphwarden-subject")
        if self.api_key_cache_s < 0:
            raise _invalid("api_key_cache_s", "api_key_cache_s is negative", "use 0 or more seconds")


class RateLimitConfig(_Section):
    #: Token bucket per principal: sustained requests per second and burst size. 0 = off.
    requests_per_s: float = 50.0
    burst: int = 100
    #: Concurrent streaming requests (runs/stream, joins, /runs/wait) per principal. 0 = off.
    max_streams: int = 16

    def __post_init__(self) -> None:
        if self.requests_per_s < 0 or self.burst < 0 or self.max_streams < 0:
            raise _invalid("requests_per_s", "rate limits must not be negative", "use 0 to turn a limit off")
        if self.requests_per_s > 0 and self.burst < 1:
            raise _invalid("burst", "burst must be at least 1 when requests_per_s is set", "use e.g. burst = 100")


class PolicyConfig(_Section):
    #: TOML policy file (ordered rules). Unset: the embedded default policy
    #: (graphwarden/policy/default_policy.toml).
    file: str | None = None
    #: Seconds between checks of the file's mtime (SIGHUP reloads at once).
    reload_poll_s: float = 2.0
    #: Threads, crons and assistants created through the gateway belong to their creator.
    owner_isolation: bool = True
    #: Metadata key holding the owner's subject.
    owner_metadata_key: str = "graphwarden_owner"
    #: How long a looked-up owner of a thread/assistant/cron is cached.
    owner_cache_s: float = 60.0
    rate_limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)

    def __post_init__(self) -> None:
        if self.file is not None and not Path(self.file).is_file():
            raise _invalid("file", f"policy file {self.file!r} does not exist", "give the path of a TOML policy file")
        if self.reload_poll_s <= 0 or self.owner_cache_s < 0:
            raise _invalid("reload_poll_s", "reload_poll_s must be positive", "use e.g. 2.0")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.owner_metadata_key):
            raise _invalid("owner_metadata_key", f"{self.owner_metadata_key!r}", "use letters, digits, _ . -")
# --- approvals ---


class ApprovalsConfig(_Section):
    """Just-in-time approvals (rules say who approves; this says where state and notices go)."""

    #: SQLite database shared by every gateway process on this machine. Default:
    #: <state.dir>/approvals.sqlite3.
    db_path: str | None = None
    #: How long a "hold" request waits for a decision when its rule gives no hold_seconds.
    hold_seconds: float = 60.0
    #: How often a held request re-reads the store for decisions made by other processes (decisions
    #: made through this process wake it at once).
    poll_interval_s: float = 1.0
    #: Generic JSON webhooks told of new requests and decisions.
    webhook_urls: list[str] = msgspec.field(default_factory=list)
    #: Slack-compatible incoming webhook ({"text": ...}). "env:NAME" or "file:PATH" allowed.
    slack_webhook_url: str | None = None
    notify_timeout_s: float = 5.0
    #: Retries after the first failed attempt, with exponential backoff from notify_backoff_s.
    notify_retries: int = 3
    notify_backoff_s: float = 0.5
    #: Base URL approvers use to reach this gateway, for links in notifications
    #: (e.g. "https://graphwarden.example.com").
    public_base_url: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.hold_seconds <= 3600:
            raise _invalid("hold_seconds", "hold_seconds must be between 0 and 3600", "use e.g. 60")
        if not 0.05 <= self.poll_interval_s <= 60:
            raise _invalid("poll_interval_s", "poll_interval_s must be between 0.05 and 60", "use e.g. 1.0")
        if self.notify_timeout_s <= 0:
            raise _invalid("notify_timeout_s", "notify_timeout_s must be positive", "use e.g. 5")
        if not 0 <= self.notify_retries <= 10:
            raise _invalid("notify_retries", "notify_retries must be between 0 and 10", "use e.g. 3")
        if self.notify_backoff_s < 0:
            raise _invalid("notify_backoff_s", "notify_backoff_s is negative", "use e.g. 0.5")
        urls = [("webhook_urls", u) for u in self.webhook_urls]
        if self.slack_webhook_url and not self.slack_webhook_url.startswith(("env:", "file:")):
            urls.append(("slack_webhook_url", self.slack_webhook_url))
        if self.public_base_url:
            urls.append(("public_base_url", self.public_base_url))
        for key, url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _invalid(key, f"{url!r} is not an http(s) URL", 'write it like "https://hooks.example.com/x"')

    def resolved_db_path(self, state_dir: str) -> Path:
        return Path(self.db_path) if self.db_path else Path(state_dir) / "approvals.sqlite3"

    def resolved_slack_url(self) -> str | None:
        """The Slack URL with an env:/file: reference resolved. Raises ConfigError."""
        value = self.slack_webhook_url
        if value is None:
            return None
        if value.startswith("env:"):
            resolved = os.environ.get(value[4:])
            if not resolved:
                raise ConfigError("approvals.slack_webhook_url", f"environment variable {value[4:]} is not set",
                                  f"export {value[4:]}=https://hooks.slack.com/... before starting")
            return resolved
        if value.startswith("file:"):
            try:
                return Path(value[5:]).read_text().strip()
            except OSError as exc:
                raise ConfigError("approvals.slack_webhook_url", f"cannot read {value[5:]}: {exc}",
                                  "fix the path") from None
        return value


__all__ += ["ApprovalsConfig"]
# --- audit ---


class AuditConfig(_Section):
    """The BLAKE3-chained, signed audit log (docs/AUDIT_FORMAT.md)."""

    #: Off only for benchmarks: without it the gateway keeps no SOC 2 evidence.
    enabled: bool = True
    #: Audit directory; default `<state.dir>/audit`. One chain per worker process lives in it.
    dir: str | None = None
    #: "strict": a response is released only after its records are fdatasync'ed.
    #: "batch": records reach the OS at once and are synced at least every `batch_window_s`;
    #: a power loss can lose the last window, a gateway crash loses nothing.
    durability: Literal["strict", "batch"] = "batch"
    batch_window_s: float = 0.05
    #: Ed25519 signing key (64 hex digits, mode 0600); default `<state.dir>/keys/audit-ed25519.key`,
    #: created on first start. The public key is written next to it as `<key_file>.pub`.
    key_file: str | None = None
    #: Second location every signed checkpoint is copied to (another disk or an append-only
    #: share), so tail truncation and rollback are detectable. None: no anchor.
    anchor_dir: str | None = None
    #: Sign a checkpoint after this many records, at least this often, and after this idle time.
    checkpoint_every: int = 10_000
    checkpoint_interval_s: float = 10.0
    idle_checkpoint_s: float = 1.0
    #: Segment files are rotated (sealed with a checkpoint) above this size.
    segment_max_bytes: int = 64 * 1024 * 1024
    #: Sealed segments older than this are removed through a signed pruning checkpoint. None: keep all.
    retention_days: float | None = None
    #: Chain ids are `<chain_prefix>-w<worker>`; default the host name. Replicas sharing one
    #: audit directory need distinct prefixes.
    chain_prefix: str | None = None

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise _invalid("checkpoint_every", f"checkpoint_every = {self.checkpoint_every}", "use 1 or more")
        for name in ("batch_window_s", "checkpoint_interval_s", "idle_checkpoint_s"):
            value = getattr(self, name)
            if not value > 0:
                raise _invalid(name, f"{name} = {value}", "use a positive number of seconds")
        if self.segment_max_bytes < 65_536:
            raise _invalid(
                "segment_max_bytes", f"segment_max_bytes = {self.segment_max_bytes}", "use at least 65536"
            )
        if self.retention_days is not None and not self.retention_days > 0:
            raise _invalid("retention_days", f"retention_days = {self.retention_days}", "use a positive number or remove the key")
        if self.chain_prefix is not None and not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,55}", self.chain_prefix):
            raise _invalid(
                "chain_prefix", f"chain_prefix {self.chain_prefix!r} is not a valid chain id prefix", "use 1-56 of A-Z a-z 0-9 . _ -"
            )

    def resolved_dir(self, state_dir: str) -> str:
        return self.dir if self.dir is not None else str(Path(state_dir) / "audit")

    def resolved_key_file(self, state_dir: str) -> str:
        return self.key_file if self.key_file is not None else str(Path(state_dir) / "keys" / "audit-ed25519.key")


__all__ += ["AuditConfig"]


# --- evidence (masking policy and audit content in the request path) ---
class MaskingRuleConfig(_Section):
    """Which directions are masked for some route classes and principal groups."""

    #: Route classes (operation names such as "threads.stream_run"); globs allowed ("store.*").
    routes: list[str] = msgspec.field(default_factory=lambda: ["*"])
    #: The rule applies to principals in any of these groups; empty = everyone.
    groups: list[str] = msgspec.field(default_factory=list)
    #: Mask request bodies before they reach the LangGraph runtime.
    requests: bool = True
    #: Mask JSON responses and SSE streams before they reach the client.
    responses: bool = True


class MaskingConfig(_Section):
    """Masking in the request path. The audit trail and the gateway's logs are always masked
    with the whole catalogue, whatever these say."""

    #: Operator catalogue (TOML) merged over the default one: add entries, disable or override
    #: defaults, choose actions. Unset = the default catalogue.
    catalogue: str | None = None
    #: Defaults when no rule matches.
    requests: bool = True
    responses: bool = True
    #: Ordered; the first rule whose routes and groups match decides.
    rules: list[MaskingRuleConfig] = msgspec.field(default_factory=list)
    #: JSON responses up to this size are masked as JSON documents (valid JSON out); larger
    #: ones are masked as a byte stream.
    json_buffer_bytes: int = 16 * 1024 * 1024
    #: Seconds between checks of the catalogue file's mtime (SIGHUP reloads at once). A
    #: catalogue that does not load is rejected and the one in force kept.
    reload_poll_s: float = 2.0

    def __post_init__(self) -> None:
        if self.catalogue is not None and not Path(self.catalogue).is_file():
            raise _invalid("catalogue", f"catalogue file {self.catalogue!r} does not exist", "fix the path or remove the key")
        if not self.reload_poll_s > 0:
            raise _invalid("reload_poll_s", "reload_poll_s must be positive", "use e.g. 2.0")
        if self.json_buffer_bytes < 1024:
            raise _invalid("json_buffer_bytes", "json_buffer_bytes is below 1024", "use at least 1024 (default 16 MiB)")


class EvidenceConfig(_Section):
    """What the audit trail records about each request and run."""

    #: "full": masked inputs, outputs and step updates are recorded; "digest": only their
    #: BLAKE3 digest and size.
    level: Literal["full", "digest"] = "full"
    #: Add the `tasks` stream mode to run streams when the client did not ask for it, so every
    #: step is recorded (the added events are removed before they reach the client).
    inject_stream_modes: bool = True
    #: After runs without a stream (wait, background), read their steps from the thread history.
    collect_history: bool = True
    #: Longest a background run is followed before its steps are read.
    history_timeout_s: float = 600.0
    #: Record the runs the server's cron scheduler starts on threads (polling their runs; see
    #: docs/EVIDENCE.md). Needs collect_history.
    follow_crons: bool = True
    #: How often the threads of crons are polled for runs that ended.
    cron_poll_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("history_timeout_s", "cron_poll_s"):
            if not getattr(self, name) > 0:
                raise _invalid(name, f"{name} must be positive", "use a number of seconds above 0")


__all__ += ["EvidenceConfig", "MaskingConfig", "MaskingRuleConfig"]
