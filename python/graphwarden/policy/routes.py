"""Route classification: (method, request target) -> the LangGraph operation it reaches.

Theory of operation
-------------------
The upstream (langgraph-api under uvicorn/starlette) routes on the percent-decoded path, matching
each segment literally or as a `{param}` that is any non-empty run of characters without "/".
The classifier mirrors that, and refuses every spelling for which "what we classified" and "what
the upstream would route" could differ:

- the path must start with "/", contain no backslash, NUL or control characters, no empty
  segment (duplicate slashes) except the one trailing slash a route declares, and no "." or ".."
  segment, whether written plainly or percent-encoded;
- "%2F", "%5C" and "%2E" (encoded "/", "\\" and ".") are refused outright: decoded by the
  upstream they would change the segments, or hide a dot segment; any other percent-escape is
  decoded (as uvicorn does) before matching, and must decode to UTF-8;
- literal segments match case-sensitively, like starlette; "/Threads" is unknown.

Anything refused or unmatched classifies to the `unknown` operation, which policy denies. The
table is a trie keyed by segment: a lookup costs one dict probe per segment, with a fallback to
the parameter branch when the literal branch has no route for the method (starlette's order:
`GET /threads/search` reaches `GET /threads/{thread_id}`).

The table below was written from langgraph-api 0.16.7 (`api/*.py`, `langgraph_runtime_inmem`
internal routes); tests/policy/test_routes.py checks every route of the installed server's app
classifies to something other than `unknown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from graphwarden.guard import Operation

#: Largest body the guard reads to decide (assistant ids, resume commands, owner metadata).
DEFAULT_BODY_LIMIT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RouteSpec:
    method: str
    pattern: str
    name: str
    action: str
    #: The guard needs the JSON body (policy fields or owner rewriting).
    body: bool = False
    #: The response is a long-lived stream (counts against concurrent-stream limits).
    stream: bool = False

    @property
    def resource(self) -> str:
        return self.name.split(".", 1)[0]


def _r(method: str, pattern: str, name: str, action: str, *, body: bool = False, stream: bool = False) -> RouteSpec:
    return RouteSpec(method, pattern, name, action, body, stream)


#: Every route of the LangGraph Agent Server API, in the server's own vocabulary.
ROUTES: tuple[RouteSpec, ...] = (
    # -- assistants (api/assistants.py)
    _r("POST", "/assistants", "assistants.create", "create", body=True),
    _r("POST", "/assistants/search", "assistants.search", "search", body=True),
    _r("POST", "/assistants/count", "assistants.count", "search", body=True),
    _r("POST", "/assistants/{assistant_id}/latest", "assistants.set_latest", "update", body=True),
    _r("POST", "/assistants/{assistant_id}/versions", "assistants.versions", "read"),
    _r("GET", "/assistants/{assistant_id}", "assistants.read", "read"),
    _r("GET", "/assistants/{assistant_id}/graph", "assistants.graph", "read"),
    _r("GET", "/assistants/{assistant_id}/schemas", "assistants.schemas", "read"),
    _r("GET", "/assistants/{assistant_id}/subgraphs", "assistants.subgraphs", "read"),
    _r("GET", "/assistants/{assistant_id}/subgraphs/{namespace}", "assistants.subgraphs", "read"),
    _r("PATCH", "/assistants/{assistant_id}", "assistants.update", "update", body=True),
    _r("DELETE", "/assistants/{assistant_id}", "assistants.delete", "delete"),
    # -- threads (api/threads.py)
    _r("POST", "/threads", "threads.create", "create", body=True),
    _r("POST", "/threads/search", "threads.search", "search", body=True),
    _r("POST", "/threads/count", "threads.count", "search", body=True),
    _r("POST", "/threads/prune", "threads.prune", "delete", body=True),
    _r("GET", "/threads/{thread_id}", "threads.read", "read"),
    _r("PATCH", "/threads/{thread_id}", "threads.update", "update", body=True),
    _r("DELETE", "/threads/{thread_id}", "threads.delete", "delete"),
    _r("GET", "/threads/{thread_id}/state", "threads.get_state", "read"),
    _r("GET", "/threads/{thread_id}/storage", "threads.get_storage", "read"),
    _r("POST", "/threads/{thread_id}/state", "threads.update_state", "update", body=True),
    _r("GET", "/threads/{thread_id}/history", "threads.history", "read"),
    _r("POST", "/threads/{thread_id}/history", "threads.history", "read"),
    _r("POST", "/threads/{thread_id}/copy", "threads.copy", "create"),
    _r("GET", "/threads/{thread_id}/state/{checkpoint_id}", "threads.get_state", "read"),
    _r("POST", "/threads/{thread_id}/state/checkpoint", "threads.get_state", "read"),
    _r("GET", "/threads/{thread_id}/stream", "threads.join_stream", "read", stream=True),
    # -- runs on a thread (api/runs.py)
    _r("POST", "/threads/{thread_id}/runs", "threads.create_run", "run", body=True),
    _r("POST", "/threads/{thread_id}/runs/stream", "threads.stream_run", "run", body=True, stream=True),
    _r("POST", "/threads/{thread_id}/runs/wait", "threads.wait_run", "run", body=True, stream=True),
    _r("GET", "/threads/{thread_id}/runs", "threads.list_runs", "read"),
    _r("GET", "/threads/{thread_id}/runs/{run_id}", "runs.read", "read"),
    _r("DELETE", "/threads/{thread_id}/runs/{run_id}", "runs.delete", "delete"),
    _r("GET", "/threads/{thread_id}/runs/{run_id}/join", "runs.join", "read", stream=True),
    _r("GET", "/threads/{thread_id}/runs/{run_id}/stream", "runs.join_stream", "read", stream=True),
    _r("POST", "/threads/{thread_id}/runs/{run_id}/cancel", "runs.cancel", "cancel"),
    _r("POST", "/threads/{thread_id}/runs/crons", "crons.create_for_thread", "create", body=True),
    # -- stateless runs and crons (api/runs.py)
    _r("POST", "/runs", "runs.create", "run", body=True),
    _r("POST", "/runs/stream", "runs.stream", "run", body=True, stream=True),
    _r("POST", "/runs/wait", "runs.wait", "run", body=True, stream=True),
    _r("POST", "/runs/batch", "runs.batch", "run", body=True),
    _r("POST", "/runs/cancel", "runs.cancel_many", "cancel", body=True),
    _r("POST", "/runs/crons", "crons.create", "create", body=True),
    _r("POST", "/runs/crons/search", "crons.search", "search", body=True),
    _r("POST", "/runs/crons/count", "crons.count", "search", body=True),
    _r("GET", "/runs/crons/{cron_id}", "crons.read", "read"),
    _r("PATCH", "/runs/crons/{cron_id}", "crons.update", "update", body=True),
    _r("DELETE", "/runs/crons/{cron_id}", "crons.delete", "delete"),
    # -- v2 event streaming and commands (api/event_streaming.py)
    _r("POST", "/threads/{thread_id}/stream/events", "threads.stream_events", "run", body=True, stream=True),
    _r("POST", "/threads/{thread_id}/commands", "threads.command", "run", body=True),
    # The same path as a WebSocket upgrade; the gateway does not proxy WebSockets.
    _r("GET", "/threads/{thread_id}/stream/events", "threads.stream_events_ws", "run", stream=True),
    # -- store (api/store.py)
    _r("PUT", "/store/items", "store.put", "create", body=True),
    _r("GET", "/store/items", "store.get", "read"),
    _r("DELETE", "/store/items", "store.delete", "delete", body=True),
    _r("POST", "/store/items/search", "store.search", "search", body=True),
    _r("POST", "/store/namespaces", "store.list_namespaces", "search", body=True),
    # -- A2A (api/a2a.py) and MCP (api/mcp)
    _r("GET", "/a2a/{assistant_id}", "a2a.read", "read"),
    _r("POST", "/a2a/{assistant_id}", "a2a.call", "run", stream=True),
    _r("DELETE", "/a2a/{assistant_id}", "a2a.delete", "delete"),
    _r("GET", "/a2a/{assistant_id}/", "a2a.read", "read"),
    _r("POST", "/a2a/{assistant_id}/", "a2a.call", "run", stream=True),
    _r("DELETE", "/a2a/{assistant_id}/", "a2a.delete", "delete"),
    _r("GET", "/a2a/{assistant_id}/.well-known/agent-card.json", "a2a.agent_card", "read"),
    _r("GET", "/a2a/{assistant_id}/.well-known/agent.json", "a2a.agent_card", "read"),
    _r("GET", "/.well-known/agent-card.json", "a2a.agent_card", "read"),
    _r("GET", "/mcp", "mcp.read", "read", stream=True),
    _r("POST", "/mcp", "mcp.call", "run", stream=True),
    _r("DELETE", "/mcp", "mcp.delete", "delete"),
    # -- generative UI (api/ui.py): a POST per graph and a static mount
    _r("POST", "/ui/{graph_id}", "ui.render", "read"),
    _r("GET", "/ui/{path*}", "ui.static", "read"),
    # -- meta (api/__init__.py, api/meta.py, api/profile.py)
    _r("GET", "/", "meta.ok", "read"),
    _r("GET", "/ok", "meta.ok", "read"),
    _r("GET", "/info", "meta.info", "read"),
    _r("GET", "/metrics", "meta.metrics", "read"),
    _r("GET", "/docs", "meta.docs", "read"),
    _r("GET", "/openapi.json", "meta.openapi", "read"),
    _r("GET", "/profile", "meta.profile", "admin"),
    # -- dev-only (langgraph_runtime_inmem/routes.py): debug reads, deploys and a data wipe
    _r("GET", "/internal/debug/thread/{thread_id}", "dev.debug_thread", "read"),
    _r("POST", "/internal/truncate", "dev.truncate", "admin"),
    _r("POST", "/deploy", "dev.deploy", "admin"),
    _r("GET", "/deploy", "dev.deploy_status", "read"),
    _r("GET", "/deploy/{operation_id}/stream", "dev.deploy_logs", "read", stream=True),
    # -- the gateway's own approval endpoints (answered by graphwarden.approvals)
    _r("GET", "/_graphwarden/approvals", "gateway.approvals.list", "read"),
    _r("GET", "/_graphwarden/approvals/{approval_id}", "gateway.approvals.show", "read"),
    _r("POST", "/_graphwarden/approvals/{approval_id}/approve", "gateway.approvals.approve", "approve", body=True),
    _r("POST", "/_graphwarden/approvals/{approval_id}/deny", "gateway.approvals.deny", "approve", body=True),
)

#: Body bound for the approval decision endpoints (a comment at most).
APPROVAL_BODY_LIMIT_BYTES = 16 * 1024

UNKNOWN = Operation(name="unknown", resource="unknown", action="unknown")


class PathRejected(ValueError):
    """The request target is spelled in a way the gateway refuses to route."""


_FORBIDDEN_ESCAPES = ("%2f", "%5c", "%2e", "%00")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def normalise_path(target: str) -> tuple[list[str], str]:
    """Split a request target into decoded path segments and the raw query.

    Raises PathRejected for every spelling listed in the module docstring. The returned
    segments of "/a/b/" are ["a", "b", ""]; of "/" they are [""].
    """
    path, _, query = target.partition("?")
    if "#" in path:
        raise PathRejected("fragment in request target")
    if not path.startswith("/"):
        raise PathRejected("request target is not an absolute path")
    if "%" in path:
        lowered = path.lower()
        for esc in _FORBIDDEN_ESCAPES:
            if esc in lowered:
                raise PathRejected(f"encoded {esc!r} in path")
        try:
            path = unquote_to_bytes(path).decode("utf-8")
        except UnicodeDecodeError:
            raise PathRejected("percent-encoding does not decode to UTF-8") from None
        if "%" in path:
            # Double encoding ("%252F"): a second decoder on the way would see an escape.
            raise PathRejected("double percent-encoding in path")
    if _BAD_CHARS.search(path) is not None:
        raise PathRejected("backslash or control character in path")
    segments = path[1:].split("/")
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg in (".", ".."):
            raise PathRejected("dot segment in path")
        if not seg and i != last:
            raise PathRejected("empty path segment (duplicate slash)")
    return segments, query


@dataclass(slots=True)
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, _Node] | None = None
    #: A trailing "{name*}" parameter taking the rest of the path.
    rest: tuple[str, dict[str, RouteSpec]] | None = None
    methods: dict[str, RouteSpec] = field(default_factory=dict)


class RouteTable:
    """A trie over path segments; `classify` returns an `Operation` (possibly `UNKNOWN`)."""

    __slots__ = ("_root", "_body_limit_bytes", "_ops", "streams")

    def __init__(self, routes: tuple[RouteSpec, ...] = ROUTES, *, body_limit_bytes: int = DEFAULT_BODY_LIMIT_BYTES) -> None:
        self._root = _Node()
        self._body_limit_bytes = body_limit_bytes
        #: Operation names of long-lived streaming routes.
        self.streams = frozenset(r.name for r in routes if r.stream)
        for spec in routes:
            self._add(spec)

    def _add(self, spec: RouteSpec) -> None:
        node = self._root
        segments = spec.pattern[1:].split("/")
        for seg in segments:
            if seg.startswith("{") and seg.endswith("*}"):
                if node.rest is None:
                    node.rest = (seg[1:-2], {})
                if spec.method in node.rest[1]:
                    raise ValueError(f"duplicate route {spec.method} {spec.pattern}")
                node.rest[1][spec.method] = spec
                return
            if seg.startswith("{") and seg.endswith("}"):
                name = seg[1:-1]
                if node.param is None:
                    node.param = (name, _Node())
                elif node.param[0] != name:
                    raise ValueError(f"parameter {name} clashes with {node.param[0]} in {spec.pattern}")
                node = node.param[1]
            else:
                node = node.literal.setdefault(seg, _Node())
        if spec.method in node.methods:
            raise ValueError(f"duplicate route {spec.method} {spec.pattern}")
        node.methods[spec.method] = spec

    def _match(self, node: _Node, segments: list[str], i: int, method: str, params: dict[str, str]) -> RouteSpec | None:
        if i == len(segments):
            return node.methods.get(method)
        seg = segments[i]
        child = node.literal.get(seg)
        if child is not None:
            hit = self._match(child, segments, i + 1, method, params)
            if hit is not None:
                return hit
        if node.param is not None and seg:
            name, pchild = node.param
            hit = self._match(pchild, segments, i + 1, method, params)
            if hit is not None:
                params[name] = seg
                return hit
        if node.rest is not None and all(segments[i:]):
            spec = node.rest[1].get(method)
            if spec is not None:
                params[node.rest[0]] = "/".join(segments[i:])
                return spec
        return None

    def lookup(self, method: str, target: str) -> tuple[RouteSpec, dict[str, str]] | None:
        """The route and its parameters, or None. Raises PathRejected for refused spellings."""
        segments, _query = normalise_path(target)
        params: dict[str, str] = {}
        if method == "HEAD":
            method = "GET"  # starlette answers HEAD on GET routes
        spec = self._match(self._root, segments, 0, method, params)
        if spec is None:
            return None
        return spec, params

    def classify(self, method: str, target: str) -> Operation:
        try:
            hit = self.lookup(method, target)
        except PathRejected as exc:
            return Operation(name="unknown", resource="unknown", action="unknown", params={"rejected": str(exc)})
        if hit is None:
            return UNKNOWN
        spec, params = hit
        limit = 0
        if spec.body:
            limit = APPROVAL_BODY_LIMIT_BYTES if spec.resource == "gateway" else self._body_limit_bytes
        return Operation(name=spec.name, resource=spec.resource, action=spec.action, params=params, body_limit_bytes=limit)


__all__ = [
    "APPROVAL_BODY_LIMIT_BYTES",
    "DEFAULT_BODY_LIMIT_BYTES",
    "PathRejected",
    "ROUTES",
    "RouteSpec",
    "RouteTable",
    "UNKNOWN",
    "normalise_path",
]
