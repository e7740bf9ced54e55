#!/usr/bin/env python3
"""What h11 alone costs per proxied request (the floor under the proxy's small-JSON figure).

A proxied request is parsed and answered on the client side (h11 SERVER) and sent and parsed on
the upstream side (h11 CLIENT). This times both halves in a loop with no I/O, once with h11's
public API (headers re-validated on send) and once the way the gateway builds events (pairs it
already validated wrapped with graphwarden.http.h11fast.trusted).

Usage: python3 benchmarks/h11_cost.py
"""
import time

import h11

from graphwarden.http import h11fast
REQ = b"GET /small.json HTTP/1.1\r\nHost: 127.0.0.1:18002\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 06:08:29 GMT\r\nContent-Type: application/json\r\nContent-Length: 143\r\nLast-Modified: Tue, 24 Nov 2026 06:08:20 GMT\r\nConnection: keep-alive\r\nETag: \"6563a\"\r\nAccept-Ranges: bytes\r\n\r\n" + b"x"*143
N=20000
def server_side():
    c = h11.Connection(h11.SERVER)
    t=time.perf_counter()
    for i in range(N):
        c.receive_data(REQ)
        ev = c.next_event(); c.next_event()
        c.send(h11.Response(status_code=200, headers=[(b"content-type", b"application/json"), (b"content-length", b"143"), (b"x-request-id", b"abcdefgh12345678")]))
        c.send(h11.Data(data=b"x"*143)); c.send(h11.EndOfMessage())
        c.start_next_cycle()
    return (time.perf_counter()-t)/N*1e6
def client_side():
    c = h11.Connection(h11.CLIENT)
    t=time.perf_counter()
    for i in range(N):
        c.send(h11.Request(method=b"GET", target=b"/small.json", headers=[(b"host", b"127.0.0.1:18001"), (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-proto", b"http"), (b"x-request-id", b"abcdefgh12345678")]))
        c.send(h11.EndOfMessage())
        c.receive_data(RESP)
        c.next_event(); c.next_event(); c.next_event()
        c.start_next_cycle()
    return (time.perf_counter()-t)/N*1e6

def server_fast():
    c = h11.Connection(h11.SERVER)
    hdrs = [(b"content-type", b"application/json"), (b"content-length", b"143"), (b"x-request-id", b"abcdefgh12345678")]
    t = time.perf_counter()
    for i in range(N):
        c.receive_data(REQ)
        ev = c.next_event(); h11fast.items(ev.headers); c.next_event()
        c.send(h11.Response(status_code=200, headers=h11fast.trusted(hdrs)))
        c.send(h11.Data(data=b"x"*143)); c.send(h11.EndOfMessage())
        c.start_next_cycle()
    return (time.perf_counter()-t)/N*1e6


def client_fast():
    c = h11.Connection(h11.CLIENT)
    hdrs = [(b"host", b"127.0.0.1:18001"), (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-proto", b"http"), (b"x-request-id", b"abcdefgh12345678")]
    t = time.perf_counter()
    for i in range(N):
        c.send(h11.Request(method=b"GET", target=b"/small.json", headers=h11fast.trusted(hdrs)))
        c.send(h11.EndOfMessage())
        c.receive_data(RESP)
        ev = c.next_event(); h11fast.items(ev.headers); c.next_event(); c.next_event()
        c.start_next_cycle()
    return (time.perf_counter()-t)/N*1e6


if __name__ == "__main__":
    s1, c1, s2, c2 = server_side(), client_side(), server_fast(), client_fast()
    print(f"h11 per proxied request, public API : server {s1:5.1f} us + client {c1:5.1f} us = {s1 + c1:5.1f} us")
    print(f"h11 per proxied request, as gateway : server {s2:5.1f} us + client {c2:5.1f} us = {s2 + c2:5.1f} us")
    print(f"=> h11 alone caps one worker at {1e6 / (s2 + c2):,.0f} proxied requests/s before any I/O")
