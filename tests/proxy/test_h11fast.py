"""The h11 shortcuts agree with h11's own public behaviour (guards the pinned internal layout)."""

import h11

from graphwarden.http import h11fast


def test_items_matches_public_iteration() -> None:
    c = h11.Connection(h11.SERVER)
    c.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nX-Thing: 1\r\nx-thing: 2\r\nContent-Length: 0\r\n\r\n")
    ev = c.next_event()
    assert isinstance(ev, h11.Request)
    assert h11fast.items(ev.headers) == list(ev.headers)


def test_trusted_headers_serialise_like_validated_ones() -> None:
    pairs = [(b"content-type", b"application/json"), (b"content-length", b"2"), (b"x-request-id", b"abcdefgh")]
    a = h11.Connection(h11.SERVER)
    b = h11.Connection(h11.SERVER)
    for conn in (a, b):
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        conn.next_event()
        conn.next_event()
    fast = a.send(h11.Response(status_code=200, headers=h11fast.trusted(pairs)))
    slow = b.send(h11.Response(status_code=200, headers=pairs))
    assert fast == slow
    assert a.send(h11.Data(data=b"{}")) == b"{}"
    # framing is still enforced on send: a body longer than the declared length is refused
    c = h11.Connection(h11.SERVER)
    c.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    c.next_event()
    c.next_event()
    c.send(h11.Response(status_code=200, headers=h11fast.trusted(pairs)))
    try:
        c.send(h11.Data(data=b"too long"))
    except h11.LocalProtocolError:
        pass
    else:
        raise AssertionError("h11 accepted a body longer than Content-Length")
