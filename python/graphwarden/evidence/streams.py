"""Run streams (SSE) as they pass the gateway: mask every event, observe graph steps, hide the
stream modes the gateway added.

One `RunStreamFilter` per streamed response. It parses the upstream bytes into events with the
sans-IO `SSEParser` and, for each event:

- `metadata`: learns the run id (a `run` record);
- `tasks` (the gateway injects this mode when the client did not ask for it): a task start tells
  the node and the superstep (`metadata.langgraph_step`), the matching task result gives the
  node's update, its error and its interrupts -> `step`, `interrupt`, `error` records;
- `messages` / `messages-tuple` token deltas: the text of each message id goes through its own
  streaming masker, so a secret split across deltas is caught; whatever the masker holds back
  leaves with the message's next delta, its last chunk (`chunk_position: "last"`), or, at the
  end of the stream, in one extra `messages` event with the held-back text;
- `events` (LangChain callback events): the text deltas of `on_chat_model_stream` go through
  one streaming masker per model call (the event's `run_id`), the same way; what it holds back
  leaves in one extra `on_chat_model_stream` event before that call's `on_chat_model_end`, or at
  the end of the stream; every other field and event is masked as JSON;
- `error`: an `error` record;
- everything else (values, updates, custom, debug, checkpoints, ...): `data:` masked as JSON.

Events of an injected mode are observed and dropped. Comments (heartbeats) and events without
data pass unchanged. The audit payloads are always masked with the full catalogue (`audit_mask`),
the client's copy with the response policy (`client_mask`, which may be the identity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import orjson

from graphwarden.http.sse import SSEEvent, SSEParser


class StreamMasker(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class JsonMasker(Protocol):
    def mask_json(self, data: bytes) -> bytes: ...

    def mask(self, data: bytes) -> bytes: ...

    def stream(self) -> StreamMasker: ...


#: Receives (kind, body) records as they are observed.
RecordSink = Callable[[str, dict[str, Any]], None]


def _base_mode(event: str | None) -> str:
    if event is None:
        return "message"
    return event.split("|", 1)[0]


def _eol(raw: bytes) -> bytes:
    i = raw.find(b"\n")
    j = raw.find(b"\r")
    if j >= 0 and (i < 0 or j < i):
        return b"\r\n" if raw[j + 1 : j + 2] == b"\n" else b"\r"
    return b"\n"


def rebuild_event(ev: SSEEvent, data: bytes) -> bytes:
    """The event with its `data:` lines replaced by `data` (other fields kept, in order)."""
    eol = _eol(ev.raw)
    out: list[bytes] = []
    wrote = False
    for line in ev.raw.splitlines():
        if not line:
            continue
        name = line.partition(b":")[0]
        if name == b"data":
            if not wrote:
                out.extend(b"data: " + part for part in data.split(b"\n"))
                wrote = True
            continue
        out.append(line)
    if not wrote:
        out.extend(b"data: " + part for part in data.split(b"\n"))
    return eol.join(out) + eol + eol


class RunStreamFilter:
    """A gateway BodyFilter for `text/event-stream` responses of run streams."""

    def __init__(
        self,
        *,
        client_mask: JsonMasker | None,
        audit_mask: JsonMasker,
        record: RecordSink,
        injected_modes: frozenset[str] = frozenset(),
        context: dict[str, Any] | None = None,
        payload: Callable[[bytes], Any] | None = None,
        native_splitter: Callable[[list[bytes], JsonMasker | None], Any] | None = None,
    ) -> None:
        self.parser = SSEParser()
        self.client_mask = client_mask
        self.audit_mask = audit_mask
        self.record = record
        self.injected = injected_modes
        self.ctx: dict[str, Any] = dict(context or {})
        #: Turns masked JSON bytes into the recorded payload (full JSON or a digest object).
        self.payload = payload or (lambda b: orjson.loads(b))
        self.events_out = 0
        self.tasks: dict[str, tuple[str, int | None]] = {}
        self.position = 0
        #: Ids of the tasks whose results this stream showed (for history matching).
        self.task_ids: list[str] = []
        self.run_status: str | None = None
        self._client_streams: dict[str, tuple[StreamMasker, int]] = {}
        self._safe_prefix: dict[str, bytes] = {}
        #: `events` mode: model-call run id -> (stream masker, event name, its event's fields)
        self._call_streams: dict[str, tuple[StreamMasker, str, dict[str, Any]]] = {}
        self._runs_seen: set[str] = set()
        #: Native splitting: bulk events (values, updates, custom, ...) are masked in Rust one
        #: chunk at a time; only the events this filter must look at come back to Python.
        self.splitter: Any = None
        if native_splitter is not None:
            routed = [b"metadata", b"tasks", b"error"]
            if client_mask is not None:
                routed += [b"messages", b"messages/partial", b"events"]
            self.splitter = native_splitter(routed, client_mask)
        self._last_messages_event: str = "messages"

    # -- BodyFilter -------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> bytes:
        splitter = self.splitter
        if splitter is None:
            return b"".join([self._event(ev) for ev in self.parser.feed(chunk)])
        out: list[bytes] = []
        for seg in splitter.feed(chunk):  # bytes or h11's bytearray, read in place
            if type(seg) is bytes:
                out.append(seg)
            else:
                for ev in self.parser.feed(seg[1]):  # one complete routed event
                    out.append(self._event(ev))
        return b"".join(out)

    @property
    def events(self) -> int:
        """Events the upstream sent (comments included)."""
        if self.splitter is not None:
            return int(self.splitter.events)
        return self.events_out

    def finish(self) -> bytes:
        rest = self.parser.finish() if self.splitter is None else self.splitter.finish()
        out: list[bytes] = []
        if rest:  # an unterminated final event: never passed unmasked
            masker = self.client_mask
            out.append(masker.mask(rest) if masker is not None else rest)
        for msg_id, (sm, _) in list(self._client_streams.items()):
            tail = sm.finish()
            if tail:
                out.append(self._tail_event(msg_id, tail))
        self._client_streams.clear()
        for call_id in list(self._call_streams):
            out.append(self._end_call(call_id))
        return b"".join(out)

    # -- events -----------------------------------------------------------------------------
    def _event(self, ev: SSEEvent) -> bytes:
        if ev.comment or not ev.data:
            self.events_out += 1
            return ev.raw
        mode = _base_mode(ev.event)
        drop = mode in self.injected
        try:
            if mode == "metadata":
                self._on_metadata(ev.data)
            elif mode == "tasks":
                self._on_task(ev.data, ev.event or "tasks")
            elif mode == "error":
                self._on_error(ev.data)
            elif mode == "updates":
                self._on_updates(ev.data)
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
            pass  # not the shape we know: still masked below, never recorded unmasked
        if drop:
            return b""
        self.events_out += 1
        masker = self.client_mask
        if masker is None:
            return ev.raw
        if mode == "messages" and ev.event is not None and ev.event in ("messages", "messages/partial"):
            return self._mask_message_event(ev, masker)
        if mode == "events":
            return self._mask_callback_event(ev, masker)
        masked = masker.mask_json(ev.data)
        if masked == ev.data:
            return ev.raw
        return rebuild_event(ev, masked)

    def _rec(self, kind: str, body: dict[str, Any]) -> None:
        full = dict(self.ctx)
        full.update(body)
        self.record(kind, full)

    def _masked(self, value: Any) -> Any:
        return self.payload(self.audit_mask.mask_json(orjson.dumps(value)))

    def _on_metadata(self, data: bytes) -> None:
        meta = orjson.loads(data)
        run_id = meta.get("run_id") if isinstance(meta, dict) else None
        if run_id and run_id not in self._runs_seen:
            self._runs_seen.add(run_id)
            self.ctx["run_id"] = run_id
            self._rec("run", {})

    def _on_task(self, data: bytes, name: str) -> None:
        task = orjson.loads(data)
        if not isinstance(task, dict) or "id" not in task:
            return
        ns = name.split("|", 1)[1].split("|") if "|" in name else []
        if "triggers" in task or "input" in task:  # task start
            meta = task.get("metadata") or {}
            step = meta.get("langgraph_step")
            self.tasks[task["id"]] = (str(task.get("name")), step if isinstance(step, int) else None)
            return
        node, step = self.tasks.pop(task["id"], (str(task.get("name")), None))
        if node.startswith("__"):
            return
        self.position += 1
        self.task_ids.append(str(task["id"]))
        interrupts = task.get("interrupts") or []
        body: dict[str, Any] = {
            "source": "stream",
            "node": node,
            "task_id": str(task["id"]),
            # The superstep is not in tasks-mode events; it comes with the history records
            # collected when the run ends (matched by task_id).
            "step": step,
            "position": self.position,
            "namespace": ns,
            "data": self._masked(task.get("result")),
            "interrupted": bool(interrupts),
        }
        if task.get("error"):
            body["error"] = self._masked(task.get("error"))
        self._rec("step", body)
        for intr in interrupts:
            self.run_status = "interrupted"
            value = intr.get("value") if isinstance(intr, dict) else intr
            self._rec("interrupt", {"node": node, "task_id": str(task["id"]), "value": self._masked(value)})
        if task.get("error"):
            self._rec("error", {"node": node, "error": "task_error", "message": self._masked(task.get("error"))})

    def _on_updates(self, data: bytes) -> None:
        upd = orjson.loads(data)
        if isinstance(upd, dict) and "__interrupt__" in upd:
            self.run_status = "interrupted"

    def _on_error(self, data: bytes) -> None:
        err = orjson.loads(data)
        self.run_status = "error"
        if isinstance(err, dict):
            self._rec("error", {"error": self._masked(err.get("error")), "message": self._masked(err.get("message"))})
        else:
            self._rec("error", {"error": "error", "message": self._masked(err)})

    # -- token deltas ---------------------------------------------------------------------
    def _mask_message_event(self, ev: SSEEvent, masker: JsonMasker) -> bytes:
        """`messages` (messages-tuple): `[chunk, metadata]` with a text delta per event;
        `messages/partial`: `[message, ...]` with the whole text so far in each event."""
        try:
            payload = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return rebuild_event(ev, masker.mask_json(ev.data))
        cumulative = ev.event == "messages/partial"
        if not isinstance(payload, list) or not payload:
            return rebuild_event(ev, masker.mask_json(ev.data))
        msgs = payload if cumulative else payload[:1]
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("id") for m in msgs):
            return rebuild_event(ev, masker.mask_json(ev.data))
        for msg in msgs:
            msg_id = str(msg["id"])
            text = msg["content"].encode()
            state = self._client_streams.get(msg_id)
            sm, seen = state if state is not None else (masker.stream(), 0)
            delta = text[seen:] if cumulative else text
            out = sm.feed(delta)
            last = msg.get("chunk_position") == "last" or bool(
                (msg.get("response_metadata") or {}).get("finish_reason")
            )
            if last:
                out += sm.finish()
                self._client_streams.pop(msg_id, None)
            else:
                self._client_streams[msg_id] = (sm, len(text) if cumulative else 0)
            if cumulative:
                safe = self._safe_prefix.get(msg_id, b"") + out
                self._safe_prefix[msg_id] = safe
                msg["content"] = safe.decode("utf-8", "replace")
            else:
                msg["content"] = out.decode("utf-8", "replace")
        self._last_messages_event = ev.event or "messages"
        # Content went through the stream masker; every other field (tool call arguments,
        # metadata) is masked as JSON.
        return rebuild_event(ev, _mask_except_content(orjson.dumps(payload), masker, len(msgs)))

    def _tail_event(self, msg_id: str, tail: bytes) -> bytes:
        """What a message's masker still held when the stream ended, as one more event."""
        chunk: dict[str, Any] = {
            "content": tail.decode("utf-8", "replace"), "id": msg_id, "type": "AIMessageChunk",
            "chunk_position": "last", "additional_kwargs": {}, "response_metadata": {},
        }
        if self._last_messages_event == "messages/partial":
            chunk["content"] = (self._safe_prefix.get(msg_id, b"") + tail).decode("utf-8", "replace")
            data = orjson.dumps([chunk])
        else:
            data = orjson.dumps([chunk, {}])
        self.events_out += 1
        return b"event: " + self._last_messages_event.encode() + b"\ndata: " + data + b"\n\n"


    def _mask_callback_event(self, ev: SSEEvent, masker: JsonMasker) -> bytes:
        """`events` mode: `on_chat_model_stream` carries one text delta of a model call in
        `data.chunk.content`; it goes through the call's stream masker."""
        try:
            payload = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            payload = None
        kind = payload.get("event") if isinstance(payload, dict) else None
        call_id = str(payload.get("run_id") or "") if isinstance(payload, dict) else ""
        data = payload.get("data") if isinstance(payload, dict) else None
        chunk = data.get("chunk") if isinstance(data, dict) else None
        if kind == "on_chat_model_stream" and call_id and isinstance(chunk, dict) \
                and isinstance(chunk.get("content"), str):
            state = self._call_streams.get(call_id)
            sm = state[0] if state is not None else masker.stream()
            fields = {k: payload.get(k) for k in ("name", "tags", "metadata", "parent_ids")}
            self._call_streams[call_id] = (sm, ev.event or "events", fields)
            out = sm.feed(chunk.pop("content").encode())
            masked = orjson.loads(masker.mask_json(orjson.dumps(payload)))
            masked["data"]["chunk"]["content"] = out.decode("utf-8", "replace")
            return rebuild_event(ev, orjson.dumps(masked))
        prefix = b""
        if call_id in self._call_streams and isinstance(kind, str) and kind.endswith("_end"):
            prefix = self._end_call(call_id)  # the held-back text, before the call's end
        try:
            masked_data = masker.mask_json(ev.data)
        except ValueError:
            masked_data = masker.mask(ev.data)
        return prefix + (ev.raw if masked_data == ev.data else rebuild_event(ev, masked_data))

    def _end_call(self, call_id: str) -> bytes:
        """What a model call's masker still holds, as one more `on_chat_model_stream` event."""
        sm, name, fields = self._call_streams.pop(call_id)
        tail = sm.finish()
        if not tail:
            return b""
        event = {"event": "on_chat_model_stream", "run_id": call_id, **fields,
                 "data": {"chunk": {"content": tail.decode("utf-8", "replace"), "type": "AIMessageChunk"}}}
        masker = self.client_mask
        assert masker is not None
        tail_text = event["data"]["chunk"].pop("content")
        masked = orjson.loads(masker.mask_json(orjson.dumps(event)))  # metadata, tags: as JSON
        masked["data"]["chunk"]["content"] = tail_text
        self.events_out += 1
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(masked) + b"\n\n"


def _mask_except_content(doc: bytes, masker: JsonMasker, n_messages: int) -> bytes:
    """Mask a messages payload as JSON but keep the first `n_messages` items' `content`, which
    the stream masker already produced."""
    payload = orjson.loads(doc)
    items = payload if isinstance(payload, list) else [payload]
    kept: list[Any] = []
    for i, item in enumerate(items):
        if i < n_messages and isinstance(item, dict) and isinstance(item.get("content"), str):
            kept.append(item.pop("content"))
        else:
            kept.append(None)
    masked = orjson.loads(masker.mask_json(orjson.dumps(payload)))
    masked_items = masked if isinstance(masked, list) else [masked]
    for item, content in zip(masked_items, kept):
        if content is not None and isinstance(item, dict):
            item["content"] = content
    return orjson.dumps(masked)


def native_splitter(routed: list[bytes], masker: JsonMasker | None) -> Any:
    """A native SSE splitter for `routed` event names; bulk events' data is masked as JSON with
    `masker` (block-masked when it is not JSON), or left alone when `masker` is None."""
    from graphwarden import _native

    fast = getattr(masker, "native_sse_rewriter", None)
    if fast is not None:
        return fast(routed)
    if masker is None:
        return _native.SseSplitter(routed)

    def rewrite(_name: bytes, data: bytes) -> bytes:
        try:
            return masker.mask_json(data)
        except ValueError:
            return masker.mask(data)

    return _native.SseSplitter(routed, rewrite)


__all__ = ["JsonMasker", "RecordSink", "RunStreamFilter", "StreamMasker", "native_splitter", "rebuild_event"]
