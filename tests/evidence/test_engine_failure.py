"""A masking engine that fails outright (a Rust panic, which reaches Python as a BaseException)
fails the request closed: a 500 with a reason, nothing passed on unmasked, the request still on
record, and the gateway serving the next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.fake_upstream import FakeUpstream
from support.harness import GatewayHandle, LoopThread, make_config, start
from support.httpcall import call

from graphwarden import _native
from graphwarden.evidence.core import Evidence, MaskingPolicy
from graphwarden.masking import Masker


class Audit:
    strict = False

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def append(self, kind: str, body: dict[str, Any], *, stamp: bool = False) -> int:
        self.records.append((kind, body))
        return len(self.records)

    async def wait_durable(self, seq: int) -> None:
        return None


class FailingMasker:
    """The default masker, but `mask_json` and `mask` panic while `fail` is set."""

    def __init__(self) -> None:
        self.inner = Masker.default()
        self.fail = True

    def mask(self, data: bytes) -> bytes:
        if self.fail:
            raise _native.PanicException("index out of bounds: the len is 3 but the index is 7")
        return self.inner.mask(data)

    def mask_json(self, data: bytes) -> bytes:
        if self.fail:
            raise _native.PanicException("index out of bounds: the len is 3 but the index is 7")
        return self.inner.mask_json(data)

    def stream(self) -> Any:
        return self.inner.stream()


@pytest.fixture()
def rig(loop_thread: LoopThread, fake_upstream: FakeUpstream) -> Iterator[tuple[GatewayHandle, FailingMasker, Audit]]:
    masker, audit = FailingMasker(), Audit()
    ev = Evidence(audit=audit, masker=masker, policy=MaskingPolicy([], default_requests=True, default_responses=True),
                  max_body_bytes=1 << 20)
    config = make_config(f"http://127.0.0.1:{fake_upstream.port}")
    gw = start(loop_thread, config, hooks=(ev.install,))
    yield gw, masker, audit
    gw.drain(1)


def test_a_panicking_engine_answers_500_and_the_gateway_goes_on(rig: tuple[GatewayHandle, FailingMasker, Audit]) -> None:
    gw, masker, audit = rig
    status, _, doc = call(gw.url, "POST", "/echo", body={"note": "jane.doe@example.com"})
    assert status == 500, doc
    assert doc["error"] == "internal_error"
    assert not any(r[0] == "request" and "jane.doe" in str(r[1]) for r in audit.records)
    masker.fail = False
    status, _, doc = call(gw.url, "POST", "/echo", body={"note": "jane.doe@example.com"})
    assert status == 200
