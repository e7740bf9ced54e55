"""Filters that need the whole body (masked JSON): answered with a Content-Length, and an
upstream that fails mid-body gets a clean 502 rather than a truncated response."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pytest

from graphwarden.gateway import Exchange
from support.fake_upstream import FakeUpstream
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.rawhttp import request


class Upper:
    """Upper-cases the body; takes it whole when the gateway offers it."""

    whole_body_limit = 1 << 20

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.wholes = 0

    def feed(self, chunk: bytes) -> bytes:
        return chunk.upper()

    def finish(self) -> bytes:
        return b""

    def whole(self, body: bytes) -> bytes:
        self.wholes += 1
        return body.upper() + b"  "  # the length changes


@pytest.fixture(scope="module")
def gw(loop_thread: LoopThread, fake_upstream: FakeUpstream) -> Iterator[tuple[GatewayHandle, list[Upper]]]:
    config = make_config(f"http://127.0.0.1:{fake_upstream.port}",
                         upstream={"response_timeout_s": 2.0, "read_idle_timeout_s": 2.0})
    handle = start(loop_thread, config)
    made: list[Upper] = []

    def factory(ex: Exchange, status: int, headers: Sequence[tuple[bytes, bytes]]) -> Upper:
        made.append(Upper())
        return made[-1]

    handle.gateway.response_filters.append(factory)
    yield handle, made
    handle.drain(1)


def test_declared_length_body_is_rewritten_whole_with_its_new_length(gw: tuple[GatewayHandle, list[Upper]]) -> None:
    handle, made = gw
    r = request(handle.port, b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    assert r.status == 200
    assert b"transfer-encoding" not in r.headers
    assert int(r.headers[b"content-length"]) == len(r.body)
    assert r.body.endswith(b"  ") and json.loads(r.body)["METHOD"] == "GET"
    assert made[-1].wholes == 1


def test_body_without_declared_length_still_streams(gw: tuple[GatewayHandle, list[Upper]]) -> None:
    handle, made = gw
    r = request(handle.port, b"GET /big?bytes=200000 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert r.status == 200
    assert r.headers[b"transfer-encoding"] == b"chunked"
    assert r.body == b"X" * 200000
    assert made[-1].wholes == 0


def test_upstream_failing_mid_body_is_a_clean_502(gw: tuple[GatewayHandle, list[Upper]]) -> None:
    handle, _ = gw
    r = request(handle.port, b"GET /short-json HTTP/1.1\r\nHost: a\r\n\r\n")
    assert r.status == 502
    err = json.loads(r.body)
    assert err["error"] == "upstream_unavailable", err
    assert b"partial" not in r.body
