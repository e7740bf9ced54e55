"""The native canonical encoder is held to its specification: orjson.dumps(OPT_SORT_KEYS).

docs/AUDIT_FORMAT.md 4.2 defines a record body as exactly what orjson writes with sorted keys;
the request path encodes bodies natively (`AuditWriter.append_obj`), so every kind of value a
record can hold must come out byte for byte the same, and what the native encoder does not
handle must be refused (TypeError) so that the caller falls back to orjson.
"""

from __future__ import annotations

import enum
import math
import random
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphwarden import _native
from graphwarden.audit import AuditLog, canonical_body

canonical_json = _native.canonical_json


def ref(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=10))
def test_bodies_encode_exactly_as_orjson_with_sorted_keys(body: dict[str, Any]) -> None:
    assert canonical_json(body) == ref(body)


def test_floats_encode_exactly_as_orjson_over_random_bit_patterns() -> None:
    rng = random.Random(20261130)
    values: list[float] = []
    for _ in range(100_000):
        values.append(struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0])
    # decimal exponents around the switches between positional and exponent notation
    for e in range(-9, 20):
        for m in (1.0, 1.5, 9.999999999999998, 1.2345678901234567, 5.0):
            values += [m * 10.0**e, -m * 10.0**e, math.nextafter(m * 10.0**e, math.inf)]
    values += [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    body = {"v": values}
    assert canonical_json(body) == ref(body)
    for v in values[:5_000]:
        assert canonical_json({"x": v}) == ref({"x": v}), v


def test_strings_escape_as_orjson() -> None:
    every_control = "".join(chr(i) for i in range(0x20)) + "\x7f\"\\/é\u2028😀"
    body = {every_control: every_control, "": "", "Z": 1, "z": 2, "é": 3}
    assert canonical_json(body) == ref(body)


def test_stamp_adds_ts_in_sorted_position_unless_present() -> None:
    before = datetime.now(timezone.utc)
    out = orjson.loads(canonical_json({"a": 1, "z": 2}, stamp=True))
    after = datetime.now(timezone.utc)
    assert list(out) == ["a", "ts", "z"]
    ts = datetime.fromisoformat(out["ts"])
    assert before - timedelta(microseconds=1) <= ts <= after
    assert canonical_json({"ts": "given", "a": 1}, stamp=True) == b'{"a":1,"ts":"given"}'
    # a nested dict is never stamped
    assert orjson.loads(canonical_json({"d": {}}, stamp=True))["d"] == {}


def test_timestamps_match_datetime() -> None:
    rng = random.Random(7)
    for ns in [0, 951_868_799_999_999_999] + [rng.randrange(0, 2**63) for _ in range(5000)]:
        want = (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)).isoformat(
            timespec="microseconds")
        assert _native.iso_from_ns(ns) == want


class Colour(str, enum.Enum):
    RED = "red"


class Sub(dict):  # type: ignore[type-arg]
    pass


@pytest.mark.parametrize("value", [
    Colour.RED, Sub(a=1), 2**64, -(2**63) - 1, b"bytes", {1: "int key"}, {"s": {1, 2}}, datetime(2026, 1, 1),
])
def test_what_is_not_natively_encoded_is_refused_for_orjson_to_handle(value: Any) -> None:
    with pytest.raises(TypeError):
        canonical_json({"v": value})


def test_surrogates_and_depth_are_refused() -> None:
    with pytest.raises((TypeError, UnicodeEncodeError)):
        canonical_json({"v": "\ud800"})
    deep: Any = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(TypeError):
        canonical_json({"v": deep})


def test_appended_objects_read_back_as_canonical_bodies(tmp_path: Path) -> None:
    """AuditLog.append takes the native path for plain dicts, falls back to orjson for the rest,
    and both store the same canonical bytes."""
    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="c0")
    bodies: list[dict[str, Any]] = [
        {"b": 1.5, "a": [None, True, "x\n"], "n": {"z": -3, "y": 2**64 - 1}},
        {"e": Colour.RED, "a": 1},  # orjson fallback (enum)
        {"ts": "2026-01-01T00:00:00.000000+00:00", "x": (1, 2)},
    ]
    for b in bodies:
        log.append("test.kind", b)
    log.close()
    got = [body for (_chain, _seq, _t, kind, body) in _native.audit_read_records(str(tmp_path / "audit"))
           if kind == "test.kind"]
    assert got == [canonical_body(b) for b in bodies]
