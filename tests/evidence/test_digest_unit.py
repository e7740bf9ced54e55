"""Digest-level evidence: payloads are recorded as the BLAKE3 digest of their masked bytes, as
docs/AUDIT_EVENTS.md says, so that an auditor holding a copy can check it."""

from __future__ import annotations

import json

import blake3

from graphwarden import _native
from graphwarden.evidence.core import Evidence, MaskingPolicy
from graphwarden.masking import Masker


class Sink:
    strict = False

    def append(self, kind: str, body: dict[str, object], *, stamp: bool = False) -> int:
        return 0

    async def wait_durable(self, seq: int) -> None:
        return None


def test_native_blake3_agrees_with_the_reference_on_short_and_long_inputs() -> None:
    assert _native.blake3_hex(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    # long inputs are hashed with the GIL released, in several chunks of the tree
    for n in (1, 63, 64, 1023, 1024, 1025, 64 << 10, (1 << 20) + 7):
        data = bytes((i * 7 + n) % 251 for i in range(n))
        assert _native.blake3_hex(data) == blake3.blake3(data).hexdigest(), n


def test_digest_level_payloads_are_the_blake3_of_the_masked_bytes() -> None:
    masker = Masker.default()
    ev = Evidence(audit=Sink(), masker=masker, policy=MaskingPolicy([], default_requests=True, default_responses=True),
                  max_body_bytes=1 << 20, audit_level="digest")
    doc = json.dumps({"input": {"messages": [{"content": "mail me at jane.doe@example.com"}]}}).encode()
    masked = masker.mask_json(doc)
    assert b"jane.doe" not in masked
    assert ev.masked_payload(doc) == {"digest": blake3.blake3(masked).hexdigest(), "bytes": len(masked)}
    text = b"not json: jane.doe@example.com"
    masked_text = masker.mask(text)
    assert ev.masked_payload(text, is_json=False) == {"digest": blake3.blake3(masked_text).hexdigest(),
                                                      "bytes": len(masked_text)}
