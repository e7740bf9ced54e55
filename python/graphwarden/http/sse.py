"""A sans-IO parser for server-sent events (WHATWG HTML, "Parsing an event stream").

Bytes go in with `feed`, complete events come out. Each event keeps its exact raw bytes, so a
proxy that does not change an event re-emits it byte for byte, and a filter that does (masking)
rewrites only the `data:` payload. Comments (`: heartbeat`) are events of their own with
`comment=True`, so they pass in order.

Line ends may be CRLF, LF or CR (the spec allows all three); a CR that ends a chunk is held until
the next byte shows whether an LF follows.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Largest event accepted. langgraph-api sends one JSON document per `data:` line; a `values`
#: event carries the whole graph state, so this is far above h11's 16 KiB header bound.
MAX_EVENT_BYTES = 64 * 1024 * 1024


class SSEError(ValueError):
    """The stream broke the format or a limit."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    #: The exact bytes of the event including its terminating blank line.
    raw: bytes
    #: `event:` field, or None (meaning "message").
    event: str | None
    #: `data:` lines joined with "\n", as bytes.
    data: bytes
    #: `id:` field, or None.
    id: bytes | None
    #: True for a block made only of comment lines (e.g. heartbeats).
    comment: bool
    retry: int | None = None


def _parse_block(raw: bytes, lines: list[bytes]) -> SSEEvent:
    event: str | None = None
    data: list[bytes] = []
    ev_id: bytes | None = None
    retry: int | None = None
    fields = 0
    for line in lines:
        if not line or line[0] == 0x3A:  # ":" comment
            continue
        fields += 1
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                ev_id = value
        elif name == b"retry":
            if value.isdigit():
                retry = int(value)
    return SSEEvent(
        raw=raw, event=event, data=b"\n".join(data), id=ev_id, comment=fields == 0, retry=retry
    )


class SSEParser:
    """Incremental event-stream parser."""

    __slots__ = ("_buf", "_lines", "_line_start", "_event_start", "_scan", "_max_event_bytes")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()
        self._lines: list[bytes] = []
        self._line_start = 0
        self._event_start = 0
        self._scan = 0
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return the events they complete, in order."""
        buf = self._buf
        buf += chunk
        events: list[SSEEvent] = []
        n = len(buf)
        i = self._scan
        while i < n:
            # Find the next CR or LF from i.
            lf = buf.find(b"\n", i)
            cr = buf.find(b"\r", i, lf if lf >= 0 else n)
            if cr >= 0:
                if cr + 1 == n:
                    break  # CR at the end: wait for the next byte (CRLF split across chunks)
                end, nxt = cr, cr + 2 if buf[cr + 1] == 0x0A else cr + 1
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            line = bytes(buf[self._line_start : end])
            self._line_start = i = nxt
            if line:
                self._lines.append(line)
            else:
                raw = bytes(buf[self._event_start : nxt])
                events.append(_parse_block(raw, self._lines))
                self._lines = []
                self._event_start = nxt
        self._scan = i
        if self._event_start:
            del buf[: self._event_start]
            self._scan -= self._event_start
            self._line_start -= self._event_start
            self._event_start = 0
        if len(buf) > self._max_event_bytes:
            raise SSEError(f"event larger than {self._max_event_bytes} bytes")
        return events

    def finish(self) -> bytes:
        """End of stream: return the bytes of an unterminated final event (the spec discards it;
        a proxy passes them on unchanged)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._lines = []
        self._scan = self._line_start = self._event_start = 0
        return rest

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)


__all__ = ["MAX_EVENT_BYTES", "SSEError", "SSEEvent", "SSEParser"]
