"""The sans-IO SSE parser: any chunking of a stream yields the same events as the whole stream."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from graphwarden.http.sse import SSEParser

EOLS = [b"\n", b"\r\n", b"\r"]


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    eol = draw(st.sampled_from(EOLS))
    out = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["data", "event", "comment", "multi", "id"]))
        text = draw(st.text(alphabet=st.characters(blacklist_characters="\r\n\0", max_codepoint=0x2FF), max_size=20)).encode()
        if kind == "data":
            block = [b"data: " + text]
        elif kind == "event":
            block = [b"event: values", b"data: " + text, b"id: 1-" + str(len(text)).encode()]
        elif kind == "comment":
            block = [b": heartbeat"]
        elif kind == "id":
            block = [b"id: " + text, b"data:" + text]
        else:
            block = [b"data: " + text, b"data: second", b"retry: 100"]
        out.append(eol.join(block) + eol + eol)
    return b"".join(out)


def _events(parser: SSEParser, chunks: list[bytes]) -> list[tuple[bytes, str | None, bytes, bytes | None, bool]]:
    evs = []
    for c in chunks:
        evs.extend(parser.feed(c))
    out = [(e.raw, e.event, e.data, e.id, e.comment) for e in evs]
    rest = parser.finish()  # bytes after the last complete event (e.g. a CR that may precede LF)
    return [*out, (rest, None, b"", None, False)]


@settings(max_examples=300, deadline=None)
@given(streams(), st.lists(st.integers(0, 400), max_size=12))
def test_any_chunking_equals_whole(stream: bytes, cuts: list[int]) -> None:
    whole = _events(SSEParser(), [stream])
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    assert _events(SSEParser(), chunks) == whole
    # raw bytes of all events re-assemble the stream exactly (byte-identical pass-through)
    assert b"".join(raw for raw, *_ in whole) == stream


def test_fields() -> None:
    p = SSEParser()
    (ev,) = p.feed(b"event: metadata\r\nid: 7\r\ndata: {\"a\":1}\r\ndata: x\r\n\r\n")
    assert ev.event == "metadata" and ev.id == b"7" and ev.data == b'{"a":1}\nx' and not ev.comment
    (hb,) = p.feed(b": heartbeat\n\n")
    assert hb.comment
    # a CR at the end of a chunk waits for the next byte
    assert p.feed(b"data: a\r") == []
    (ev2,) = p.feed(b"\n\r\n")
    assert ev2.data == b"a"
