"""Protocol-level behaviour of the proxy over real sockets: framing, smuggling, limits,
timeouts, keep-alive, streaming and flow control."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from support.fake_upstream import FakeUpstream
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.rawhttp import connect, read_reply, request, wait_closed


@pytest.fixture(scope="module")
def gw(loop_thread: LoopThread, fake_upstream: FakeUpstream) -> Iterator[GatewayHandle]:
    config = make_config(
        f"http://127.0.0.1:{fake_upstream.port}",
        limits={"header_read_timeout_s": 1.0, "keepalive_timeout_s": 2.0, "max_body_bytes": 1_000_000,
                "body_read_timeout_s": 1.0, "max_header_count": 50},
        upstream={"response_timeout_s": 1.0, "read_idle_timeout_s": 1.0,
                  "headers": {"x-api-key": "upstream-secret"}, "forward_x_headers": ["x-trace-*"]},
    )
    handle = start(loop_thread, config)
    yield handle
    handle.drain(1)


def echo(gw: GatewayHandle, raw: bytes) -> tuple[int, dict[str, object]]:
    r = request(gw.port, raw)
    return r.status, json.loads(r.body) if r.status == 200 else {}


def test_get_passes_through_with_request_id_and_forwarding_headers(gw: GatewayHandle) -> None:
    r = request(gw.port, b"GET /echo?x=1 HTTP/1.1\r\nHost: gw.example\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n")
    assert r.status == 200
    data = json.loads(r.body)
    headers = dict((n, v) for n, v in data["headers"])
    assert data["target"] == "/echo?x=1"
    assert headers["x-forwarded-for"] == "10.9.9.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "gw.example"
    assert headers["x-request-id"] == r.headers[b"x-request-id"].decode()
    assert headers["host"].startswith("127.0.0.1:")
    assert r.headers[b"location"] == b"/echo/1"


def test_client_request_id_is_kept_when_valid_and_replaced_when_not(gw: GatewayHandle) -> None:
    r = request(gw.port, b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-12345678\r\n\r\n")
    assert r.headers[b"x-request-id"] == b"abc-12345678"
    r = request(gw.port, b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Request-Id: bad id\xff\r\n\r\n")
    rid = r.headers[b"x-request-id"]
    assert rid != b"bad id\xff" and len(rid) == 28
    assert dict(json.loads(r.body)["headers"])["x-request-id"] == rid.decode()


def test_credentials_and_trust_headers_never_reach_upstream(gw: GatewayHandle) -> None:
    raw = (
        b"GET /echo HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer client\r\nX-Api-Key: client-key\r\n"
        b"X-User-Id: admin\r\nX-Tenant-Id: t\r\nX-Service-Key: s\r\nX-Auth-Scheme: langsmith\r\n"
        b"Cookie: session=1\r\nlangsmith-trace: 123\r\nbaggage: langsmith-metadata=%7B%7D\r\n"
        b"X-Custom: smuggle\r\nX-Trace-Id: keep-me\r\nProxy-Authorization: Basic x\r\n"
        b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nTE: trailers\r\nUser-Agent: t/1\r\n\r\n"
    )
    status, data = echo(gw, raw)
    assert status == 200
    headers = [(n, v) for n, v in data["headers"]]  # type: ignore[union-attr]
    names = [n for n, _ in headers]
    for banned in ("authorization", "x-user-id", "x-tenant-id", "x-service-key", "x-auth-scheme",
                   "cookie", "langsmith-trace", "baggage", "x-custom", "proxy-authorization",
                   "connection", "x-hop", "te"):
        assert banned not in names, banned
    assert ("x-api-key", "upstream-secret") in headers  # injected by the gateway, client's dropped
    assert names.count("x-api-key") == 1
    assert ("x-trace-id", "keep-me") in headers
    assert ("user-agent", "t/1") in headers


def test_post_content_length_body_streams_through(gw: GatewayHandle) -> None:
    body = bytes(range(256)) * 256
    raw = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    status, data = echo(gw, raw)
    import hashlib
    assert data["body_len"] == len(body)
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_is_forwarded_chunked(gw: GatewayHandle) -> None:
    raw = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    status, data = echo(gw, raw)
    assert status == 200 and data["body_len"] == 11
    assert ["transfer-encoding", "chunked"] in data["headers"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET /echo HTTP/1.1\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413),
    ],
    ids=["cl+te", "dup-cl-differ", "te-not-chunked", "no-host", "two-hosts",
         "space-before-colon", "garbage", "declared-too-large"],
)
def test_malformed_requests_get_status_and_close(gw: GatewayHandle, fake_upstream: FakeUpstream, raw: bytes, status: int) -> None:
    before = len(fake_upstream.requests)
    r = request(gw.port, raw)
    assert r.status == status
    assert r.closed
    assert json.loads(r.body)["reason"]
    assert len(fake_upstream.requests) == before  # nothing reached the upstream


def test_identical_duplicate_content_length_is_merged_to_one(gw: GatewayHandle) -> None:
    # RFC 9112 6.3 allows a recipient to merge identical values; h11 does, and only one
    # Content-Length reaches the upstream, so there is nothing to desynchronise.
    status, data = echo(gw, b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc")
    assert status == 200 and data["body_len"] == 3
    assert [n for n, _ in data["headers"]].count("content-length") == 1  # type: ignore[union-attr]


def test_bad_chunk_size_is_refused(gw: GatewayHandle) -> None:
    r = request(gw.port, b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    assert r.status == 400 and r.closed


def test_oversized_header_block_gets_431(gw: GatewayHandle) -> None:
    r = request(gw.port, b"GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert r.status == 431 and r.closed


def test_too_many_headers_gets_431(gw: GatewayHandle) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(60))
    r = request(gw.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert r.status == 431 and r.closed


def test_streamed_body_over_limit_gets_413(gw: GatewayHandle) -> None:
    chunk = b"%x\r\n%s\r\n" % (100_000, b"a" * 100_000)
    with connect(gw.port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(15):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = read_reply(s)
    assert r.status in (413, 502)  # 413 from the gateway; never forwarded whole
    assert r.closed


def test_slowloris_head_times_out_with_408(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n")
        t0 = time.monotonic()
        for _ in range(20):
            try:
                s.sendall(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
        r = read_reply(s)
        assert r.status == 408 and r.closed
        assert time.monotonic() - t0 < 5


def test_stalled_body_times_out(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        r = read_reply(s)
    assert r.status == 408


def test_idle_keepalive_connection_is_closed(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_reply(s).status == 200
        t0 = time.monotonic()
        assert wait_closed(s, 5)
        assert 1.5 < time.monotonic() - t0 < 4.5


def test_keepalive_and_pipelining(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"GET /echo?a=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?a=2 HTTP/1.1\r\nHost: a\r\n\r\n")
        r1 = read_reply(s)
        r2 = read_reply(s)
        s.sendall(b"GET /echo?a=3 HTTP/1.1\r\nHost: a\r\n\r\n")
        r3 = read_reply(s)
    assert [json.loads(r.body)["target"] for r in (r1, r2, r3)] == ["/echo?a=1", "/echo?a=2", "/echo?a=3"]


def test_upstream_connections_are_reused(gw: GatewayHandle, fake_upstream: FakeUpstream) -> None:
    request(gw.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    before = fake_upstream.connections
    for _ in range(20):
        assert request(gw.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
    assert fake_upstream.connections - before <= 1


def test_upstream_timeout_is_504_json(gw: GatewayHandle) -> None:
    r = request(gw.port, b"GET /slow?delay=3 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert r.status == 504
    body = json.loads(r.body)
    assert body["error"] == "upstream_timeout" and body["request_id"]


def test_upstream_dropping_connection_is_502(gw: GatewayHandle) -> None:
    r = request(gw.port, b"POST /drop HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 502
    assert json.loads(r.body)["error"] == "upstream_unavailable"


def test_upstream_down_is_502(loop_thread: LoopThread) -> None:
    from support.net import free_port
    handle = start(loop_thread, make_config(f"http://127.0.0.1:{free_port()}"))
    try:
        r = request(handle.port, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert r.status == 502
        assert "cannot connect" in json.loads(r.body)["reason"]
        ready = request(handle.port, b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert ready.status == 503
    finally:
        handle.drain(1)


def test_stalled_response_body_is_cut(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"GET /hang-body HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(5)
        data = b""
        t0 = time.monotonic()
        while True:
            part = s.recv(65536)
            if not part:
                break
            data += part
        assert b"partial" in data
        assert time.monotonic() - t0 < 4  # read_idle_timeout_s = 1


def test_sse_passes_event_by_event(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"GET /sse?n=4&gap=0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(5)
        buf = b""
        t0 = time.monotonic()
        while b"id: 0\r\n\r\n" not in buf:
            buf += s.recv(65536)
        first = time.monotonic() - t0
        assert first < 0.25  # the first event arrives before the next is produced
        r = read_reply_after(s, buf)
    assert b"content-location: /threads/t/runs/1" in r.lower()
    assert b": heartbeat\r\n\r\n" in r
    for i in range(4):
        assert b'data: {"i": %d}\r\nid: %d\r\n\r\n' % (i, i) in r


def read_reply_after(s: socket.socket, buf: bytes) -> bytes:
    while not buf.endswith(b"0\r\n\r\n"):
        part = s.recv(65536)
        if not part:
            break
        buf += part
    return buf


def test_sse_last_event_id_reaches_upstream(gw: GatewayHandle) -> None:
    r = request(gw.port, b"GET /sse?n=4 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 1\r\n\r\n")
    assert b"id: 2" in r.body and b"id: 1\r\n" not in r.body


def test_large_response_streams_to_slow_reader_with_bounded_memory(gw: GatewayHandle) -> None:
    import resource

    total = 64 * 1024 * 1024
    with connect(gw.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(b"GET /big?bytes=%d HTTP/1.1\r\nHost: a\r\n\r\n" % total)
        time.sleep(1.0)  # do not read: the gateway must stop reading the upstream
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        s.settimeout(10)
        got = 0
        while True:
            part = s.recv(1 << 20)
            if not part:
                break
            got += len(part)
            if got > total:  # chunk framing overhead included; stop at end marker
                if part.endswith(b"0\r\n\r\n"):
                    break
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert got >= total
    # ru_maxrss is in KiB; streaming 64 MiB must not grow the process by anything like 64 MiB.
    assert rss_after - rss_before < 32 * 1024


def test_concurrent_connection_limit(loop_thread: LoopThread, fake_upstream: FakeUpstream) -> None:
    handle = start(loop_thread, make_config(f"http://127.0.0.1:{fake_upstream.port}", listen={"max_connections": 3}))
    socks = [connect(handle.port) for _ in range(3)]
    try:
        time.sleep(0.2)
        r = request(handle.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert r.status == 503 and json.loads(r.body)["error"] == "too_many_connections"
    finally:
        for s in socks:
            s.close()
        handle.drain(1)


def test_health_metrics_endpoints(gw: GatewayHandle) -> None:
    assert request(gw.port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
    assert request(gw.port, b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n").status == 200
    m = request(gw.port, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
    assert m.status == 200
    text = m.body.decode()
    assert 'graphwarden_requests_total{worker="0",route="passthrough",status="200"}' in text
    assert "graphwarden_request_duration_seconds_bucket" in text
    assert "graphwarden_open_connections" in text


def test_expect_100_continue(gw: GatewayHandle) -> None:
    with connect(gw.port) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        s.settimeout(3)
        interim = s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        s.sendall(b"hello")
        r = read_reply(s)
    assert r.status == 200 and json.loads(r.body)["body_len"] == 5


def test_graceful_drain_finishes_inflight_stream(loop_thread: LoopThread, fake_upstream: FakeUpstream) -> None:
    handle = start(loop_thread, make_config(f"http://127.0.0.1:{fake_upstream.port}"))
    result: dict[str, bytes] = {}

    def client() -> None:
        r = request(handle.port, b"GET /sse?n=5&gap=0.2 HTTP/1.1\r\nHost: a\r\n\r\n")
        result["body"] = r.body

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.3)
    handle.drain(5)
    t.join(5)
    assert b"id: 4" in result["body"]
    with pytest.raises(OSError):
        connect(handle.port, timeout=1).close()
