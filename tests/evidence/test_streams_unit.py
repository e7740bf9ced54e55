"""RunStreamFilter with a small stand-in masker (the real engine is exercised end to end in
test_guarded_flow.py): event-by-event masking, token deltas split across events, injected
modes removed, steps/interrupts/errors observed."""

from __future__ import annotations

import re
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwarden.evidence.streams import RunStreamFilter, native_splitter, rebuild_event
from graphwarden.http.sse import SSEParser

SECRET = re.compile(rb"SECRET-\d{6}")
HOLD = 12  # longest match


class FakeStream:
    """Holds back the last HOLD bytes (and any match that straddles the cut)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        cut = max(0, len(self.buf) - HOLD)
        for m in SECRET.finditer(self.buf):
            if m.start() < cut < m.end():
                cut = m.start()
        head, self.buf = self.buf[:cut], self.buf[cut:]
        return SECRET.sub(b"[S]", head)

    def finish(self) -> bytes:
        out, self.buf = SECRET.sub(b"[S]", self.buf), b""
        return out


class FakeMasker:
    def mask(self, data: bytes) -> bytes:
        return SECRET.sub(b"[S]", data)

    def mask_json(self, data: bytes) -> bytes:
        doc = orjson.loads(data)

        def walk(v: Any) -> Any:
            if isinstance(v, str):
                return SECRET.sub(b"[S]", v.encode()).decode()
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            return v

        return orjson.dumps(walk(doc))

    def stream(self) -> FakeStream:
        return FakeStream()


def _ev(event: str, data: Any, eid: str | None = None) -> bytes:
    head = f"event: {event}\n" + (f"id: {eid}\n" if eid else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _deltas(text: str, msg_id: str = "m1") -> list[bytes]:
    out = []
    pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
    for i, p in enumerate(pieces):
        chunk = {"content": p, "id": msg_id, "type": "AIMessageChunk", "chunk_position": None}
        out.append(_ev("messages", [chunk, {"langgraph_node": "greet", "note": "SECRET-999999"}]))
    out.append(_ev("messages", [{"content": "", "id": msg_id, "type": "AIMessageChunk", "chunk_position": "last"}, {}]))
    return out


def _callback_deltas(text: str, call: str = "c1") -> list[bytes]:
    """`events` mode: one model call streaming `text` 4 characters per event."""
    meta = {"langgraph_node": "greet", "note": "SECRET-888888"}
    out = [_ev("events", {"event": "on_chat_model_start", "run_id": call, "name": "fake", "metadata": meta,
                          "data": {"input": {"messages": [["SECRET-777777"]]}}})]
    for i in range(0, len(text), 4):
        out.append(_ev("events", {"event": "on_chat_model_stream", "run_id": call, "name": "fake", "tags": [],
                                  "metadata": meta, "data": {"chunk": {"content": text[i:i + 4], "id": "m9",
                                                                       "type": "AIMessageChunk"}}}))
    out.append(_ev("events", {"event": "on_chat_model_end", "run_id": call, "name": "fake", "metadata": meta,
                              "data": {"output": {"content": text}}}))
    return out


def _callback_text(out: bytes) -> str:
    return "".join(orjson.loads(e.data)["data"]["chunk"]["content"] for e in SSEParser().feed(out)
                   if e.event == "events" and orjson.loads(e.data)["event"] == "on_chat_model_stream")


def _stream() -> list[bytes]:
    return [
        _ev("metadata", {"run_id": "r1", "attempt": 1}),
        *_deltas("my key is SECRET-123456 ok"),
        *_callback_deltas("call SECRET-654321 done"),
        _ev("tasks", {"id": "t1", "name": "greet", "input": {"x": "SECRET-111111"}, "triggers": ["a"],
                      "metadata": {"langgraph_step": 1}}),
        _ev("tasks", {"id": "t1", "name": "greet", "error": None, "result": {"messages": ["SECRET-222222"]}, "interrupts": []}),
        _ev("updates", {"greet": {"messages": ["SECRET-222222"]}}, eid="5"),
        b": heartbeat\n\n",
        _ev("tasks", {"id": "t2", "name": "review", "input": {}, "triggers": ["b"], "metadata": {"langgraph_step": 2}}),
        _ev("tasks", {"id": "t2", "name": "review", "error": None, "result": None,
                      "interrupts": [{"value": {"q": "SECRET-333333"}, "id": "i"}]}),
        _ev("error", {"error": "ValueError", "message": "boom SECRET-444444"}),
    ]


def _run(chunks: list[bytes], native: bool = False) -> tuple[bytes, list[tuple[str, dict[str, Any]]]]:
    records: list[tuple[str, dict[str, Any]]] = []
    m = FakeMasker()
    f = RunStreamFilter(client_mask=m, audit_mask=m, record=lambda k, b: records.append((k, b)),
                        injected_modes=frozenset({"tasks"}), context={"request_id": "q1", "thread_id": "th"},
                        native_splitter=native_splitter if native else None)
    out = b"".join(f.feed(c) for c in chunks) + f.finish()
    return out, records


import pytest


@pytest.mark.parametrize("native", [False, True])
def test_masks_drops_injected_and_records(native: bool) -> None:
    out, records = _run(_stream(), native)
    assert b"SECRET-" not in out
    events = SSEParser().feed(out)
    names = [e.event for e in events]
    assert "tasks" not in names
    assert names.count("updates") == 1 and None in names  # the heartbeat passed too
    upd = next(e for e in events if e.event == "updates")
    assert upd.id == b"5"
    text = "".join(orjson.loads(e.data)[0]["content"] for e in events if e.event == "messages")
    assert text == "my key is [S] ok"
    assert _callback_text(out) == "call [S] done"
    kinds = [k for k, _ in records]
    assert kinds == ["run", "step", "step", "interrupt", "error"]
    step = records[1][1]
    assert step["node"] == "greet" and step["step"] == 1 and step["data"] == {"messages": ["[S]"]}
    assert step["request_id"] == "q1" and step["run_id"] == "r1" and step["thread_id"] == "th"
    assert records[3][1]["value"] == {"q": "[S]"}
    assert b"SECRET-" not in orjson.dumps(records)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=15), st.booleans())
def test_any_chunking_gives_the_same_stream(cuts: list[int], native: bool) -> None:
    whole = b"".join(_stream())
    points = sorted({min(c, len(whole)) for c in cuts})
    chunks = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)])]
    assert _run(chunks, native) == _run([whole], False)


def test_held_back_text_leaves_at_stream_end() -> None:
    # no "last" chunk: the stream ends while the masker still holds text
    chunks = [_ev("messages", [{"content": p, "id": "m", "type": "AIMessageChunk"}, {}])
              for p in ("SECR", "ET-1", "2345", "6 and more")]
    out, _ = _run(chunks)
    assert b"SECRET-" not in out
    events = SSEParser().feed(out)
    text = "".join(orjson.loads(e.data)[0]["content"] for e in events)
    assert text == "[S] and more"


def test_rebuild_keeps_fields_and_line_ends() -> None:
    raw = b"event: values\r\nid: 7\r\ndata: {\"a\":1}\r\n\r\n"
    (ev,) = SSEParser().feed(raw)
    out = rebuild_event(ev, b'{"a":2}')
    assert out == b"event: values\r\nid: 7\r\ndata: {\"a\":2}\r\n\r\n"


@pytest.mark.parametrize("native", [False, True])
def test_a_long_token_split_across_deltas_never_leaves_unmasked(native: bool) -> None:
    # The real engine: an ID token of the size IdPs issue (longer than the stream masker's base
    # hold-back, with `eyJ` at its header and again at its payload), streamed 4 characters per
    # event as a chat model does. Nothing of it reaches the client or the audit records.
    import base64

    from graphwarden.masking import Masker

    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    jwt = b64({"alg": "RS256", "kid": "k1"}) + "." + b64({"sub": "u-" + "x" * 600, "iss": "https://idp"}) + "." + "S" * 342
    records: list[tuple[str, dict[str, Any]]] = []
    m = Masker.default()
    f = RunStreamFilter(client_mask=m, audit_mask=m, record=lambda k, b: records.append((k, b)),
                        injected_modes=frozenset(), context={"request_id": "q1", "thread_id": "th"},
                        native_splitter=native_splitter if native else None)
    chunks = [_ev("metadata", {"run_id": "r1", "attempt": 1}), *_deltas(f"your token is {jwt} keep it safe")]
    out = b"".join(f.feed(c) for c in chunks) + f.finish()
    text = "".join(orjson.loads(e.data)[0]["content"] for e in SSEParser().feed(out) if e.event == "messages")
    assert text == "your token is [JWT] keep it safe"
    assert b"eyJ" not in out and b"eyJ" not in orjson.dumps(records)


@pytest.mark.parametrize("native", [False, True])
def test_callback_events_release_held_text_before_the_call_ends(native: bool) -> None:
    out, _ = _run(_callback_deltas("ends with SECRET-12"), native)  # held back to the end
    events = [orjson.loads(e.data) for e in SSEParser().feed(out)]
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "on_chat_model_end" and kinds[-2] == "on_chat_model_stream"
    assert _callback_text(out) == "ends with SECRET-12"  # not a whole secret: released as is
    out, _ = _run(_callback_deltas("ends with SECRET-123456")[:-1], native)  # the stream stops mid-call
    assert b"SECRET-" not in out and _callback_text(out) == "ends with [S]"
