"""The engine against Python's `re` (the oracle), streaming against block mode, JSON masking."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import Oracle

from graphwarden.masking import Masker, default_catalogue, parse_catalogue

M = Masker.default()
CARD = next(e.entity for e in default_catalogue().entries if e.id == "payment_card").encode()
ORACLE = Oracle(default_catalogue().entries)
PIECES = [p for e in default_catalogue().entries if e.enabled for p in (*e.positive, *e.negative)]
FILLER = ["the", "order", "2026-11-24T06:00:00Z", "id", "550e8400-e29b-41d4-a716-446655440000", "commit",
          "9fceb02d0ae598e95dc970b74767f19372d61af8", "#12345678", "tel", "card", "\n", "  ", "é", "ß", "@", ".", "-"]


def corpus(seed: int, n: int = 60) -> bytes:
    rnd = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    words = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.15:
            words.append(rnd.choice(PIECES))
        elif r < 0.25:
            words.append(rnd.choice([fake.email(), fake.phone_number(), fake.credit_card_number(), fake.ssn(),
                                     fake.iban(), fake.ipv4(), fake.user_name(), fake.url()]))
        else:
            words.append(rnd.choice(FILLER + [fake.word(), fake.sentence()]))
    return " ".join(words).encode()


@pytest.mark.parametrize("seed", range(40))
def test_spans_agree_with_python_re(seed: int) -> None:
    text = corpus(seed)
    assert sorted(M.matches(text)) == sorted(ORACLE.matches(text))
    assert M.findings(text) == ORACLE.findings(text)


def test_fixtures_agree_with_python_re() -> None:
    for piece in PIECES:
        text = f"x {piece} y".encode()
        assert M.findings(text) == ORACLE.findings(text), piece


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 4000), max_size=25))
def test_streaming_equals_block_for_any_chunking(seed: int, cuts: list[int]) -> None:
    text = corpus(seed, 80)
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]
    s = M.stream()
    out = b"".join(s.feed(c) for c in chunks) + s.finish()
    assert out == M.mask(text)


def test_stream_holds_back_only_what_can_still_match() -> None:
    s = M.stream()
    released = s.feed(b"x" * 2000 + b" my key is ghp_a1b2c3d4e5")
    # the tail that could still become a token is held, the rest is out
    assert b"ghp_" not in released and len(released) >= 2000 - 420
    rest = s.feed(b"f6g7h8i9j0k1l2m3n4o5p6q7r8 done") + s.finish()
    assert b"ghp_" not in released + rest and b"[GITHUB_TOKEN] done" in released + rest


def _long_secrets() -> list[bytes]:
    import base64

    def b64(obj: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")

    # an ID token the size IdPs issue: `eyJ` at the header and again at the payload, > 410 bytes
    jwt = b64({"alg": "RS256", "typ": "JWT", "kid": "k1"}) + b"." + b64(
        {"sub": "user-" + "x" * 500, "groups": ["eng", "ops"], "iss": "https://idp.example"}
    ) + b"." + b"Q" * 342
    pem = (b"-----BEGIN RSA PRIVATE KEY-----\n" + b"\n".join([b"MIIEow" + b"A" * 58] * 25)
           + b"\n-----END RSA PRIVATE KEY-----")
    return [jwt, b"Authorization: Bearer " + jwt, pem]


@pytest.mark.parametrize("size", [1, 3, 64, 100, 256, 1000])
def test_long_secrets_stream_like_block(size: int) -> None:
    for secret in _long_secrets():
        text = b"before " + secret + b" after eyJ and -----BEGIN tail " + b"z" * 600
        whole = M.mask(text)
        assert secret not in whole and b"eyJhbGci" not in whole
        s = M.stream()
        out = b"".join(s.feed(text[i:i + size]) for i in range(0, len(text), size)) + s.finish()
        assert out == whole


def test_a_match_longer_than_max_len_is_no_match() -> None:
    # `max_len` bounds the stream hold-back, so it is part of an entry's meaning: the engine,
    # the oracle and the stream all leave a longer "match" alone
    head, tail = b"-----BEGIN PRIVATE KEY-----\n", b"\n-----END PRIVATE KEY-----"
    limit = next(e.max_len for e in default_catalogue().entries if e.id == "pem_private_key")
    fits = head + b"A" * (limit - len(head) - len(tail)) + tail
    too_long = head + b"A" * (limit + 1 - len(head) - len(tail)) + tail
    assert M.mask(b"x " + fits + b" y") == b"x [PRIVATE_KEY] y"
    text = b"x " + too_long + b" y"
    assert M.mask(text) == text and ORACLE.matches(text) == [] == M.matches(text)
    s = M.stream()
    assert b"".join(s.feed(text[i:i + 500]) for i in range(0, len(text), 500)) + s.finish() == text


def test_stream_holds_back_by_a_word_not_by_the_longest_match() -> None:
    # Token streams: text is released as soon as no match can still be open in it. An email
    # can only hold email bytes, a card number only digits, spaces and dashes: a word is held,
    # not the 410 bytes of the longest entry.
    s = M.stream()
    first = s.feed(b"Hello there, how are you today? Write to jane.doe@exam")
    assert first == b"Hello there, how are you today? Write to "
    rest = s.feed(b"ple.com or call 415-555-01") + s.feed(b"00 now. ") + s.finish()
    assert first + rest == b"Hello there, how are you today? Write to [EMAIL] or call [PHONE] now. "


def test_mask_json_decodes_escapes_and_stays_valid() -> None:
    doc = json.dumps({
        "a": "mail jane.doe@example.com",
        "escaped": "jane\\u002edoe\\u0040example.com",
        "split": "ghp_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8",
        "quote": 'say "hi" 4111 1111 1111 1111',
        "jane@example.com": [1, 2.50, None, True],
        "nested": {"l": ["123-45-6789", {"k": "AKIAIOSFODNN7EXAMPLE"}]},
    }).encode().replace(b"jane\\\\u002edoe\\\\u0040example.com", b"jane\\u002edoe\\u0040example.com")
    out = M.mask_json(doc)
    decoded = json.loads(out)
    flat = json.dumps(decoded)
    for secret in ("jane.doe@example.com", "4111 1111 1111 1111", "123-45-6789", "AKIAIOSFODNN7EXAMPLE",
                   "ghp_a1b2", "jane@example.com"):
        assert secret not in flat, secret
    assert decoded["quote"] == 'say "hi" [CARD]' and decoded["nested"]["l"][1]["k"] == "[AWS_ACCESS_KEY]"
    assert b"[1, 2.5, null, true]" in out  # untouched bytes stay byte-identical
    assert M.mask_json(b'{"n": 2.50, "e": 1E+3, "s": "x"}') == b'{"n": 2.50, "e": 1E+3, "s": "x"}'
    # an escape does not create a secret either
    assert M.mask_json(b'{"x":"jane.doe\\\\u0040example.com"}') == b'{"x":"jane.doe\\\\u0040example.com"}'
    with pytest.raises(ValueError):
        M.mask_json(b'{"unterminated": "x')


def test_mask_json_masks_what_runs_from_a_key_into_its_value_and_numbers() -> None:
    # A keyword-anchored secret is its key and its value, which no one string holds: the
    # document's raw bytes are masked too, and their spans applied to the strings they overlap.
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    for doc in (json.dumps({"config": {"aws_secret_access_key": secret}}),
                json.dumps({"aws_secret_access_key": secret + "\n"}),
                '{"AWS_SECRET_ACCESS_KEY":"' + secret + '"}'):
        assert M.mask(doc.encode()) != doc.encode()  # what mask() of the same bytes finds
        out = M.mask_json(doc.encode())
        assert secret not in json.dumps(json.loads(out)) and b"[AWS_SECRET_KEY]" in out, doc
    # a card number that is a JSON number becomes a string of its masked text; other numbers,
    # literals and punctuation stay byte for byte
    doc = b'{"card": 4111111111111111, "amount": 12.50, "n": [1, 2.50, null, true], "x": -4111111111111111.5}'
    assert M.mask_json(doc) == (b'{"card": "[' + CARD + b']", "amount": 12.50, "n": [1, 2.50, null, true], '
                                b'"x": "-[' + CARD + b'].5"}')


@settings(max_examples=100, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from(PIECES),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(PIECES), kids, max_size=4),
    max_leaves=12,
))
def test_mask_json_always_returns_valid_json(value: object) -> None:
    doc = json.dumps(value).encode()
    out = M.mask_json(doc)
    json.loads(out)
    for piece in PIECES:
        if M.findings(piece.encode()) and piece in json.dumps(value):
            assert piece not in json.loads(out.decode()) if isinstance(value, str) else True


def test_findings_never_carry_values() -> None:
    f = M.findings(b"write to jane.doe@example.com")
    assert f == [("EMAIL", 9, 29)]


ORDER_ENTRY = ('[[entries]]\nid = "order"\nentity = "ORDER"\nkind = "pii"\npatterns = [\'\\bORD\\d{6}\\b\']\n'
               'max_len = 9\npositive = ["ORD123456"]\nnegative = ["ORD12"]\n')


def test_default_digit_patterns_keep_their_shapes_beside_operator_patterns() -> None:
    assert M._engine.digit_gated()
    # an operator's own class-led pattern gets a Hyperscan database of its own; the shipped
    # digit patterns are still found by their shapes
    custom = Masker(parse_catalogue(ORDER_ENTRY, "t.toml", base=default_catalogue()))
    assert custom._engine.digit_gated()
    assert custom.mask(b"order ORD123456 card 4111 1111 1111 1111") == b"order [ORDER] card [" + CARD + b"]"
    # without the shipped digit patterns, nothing stands in for a Hyperscan pass
    alone = Masker(parse_catalogue(ORDER_ENTRY, "t.toml"))
    assert not alone._engine.digit_gated()
    assert alone.mask(b"order ORD123456 card 4111 1111 1111 1111") == b"order [ORDER] card 4111 1111 1111 1111"


def test_simd_names_what_this_cpu_has() -> None:
    """The shipped literal-led database is gated on any x86_64 CPU with AVX2 (nibble tables) or
    AVX-512 VBMI (exact tables), and the digit shapes read the widest masks the CPU has (with
    AVX-512, long ranges go four windows at a time in AVX2 registers)."""
    flags: set[str] = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "avx512vbmi" in flags and "avx512bw" in flags:
        gate = "avx512vbmi"
    elif "avx2" in flags:
        gate = "avx2"
    else:
        gate = "none"
    shapes = "avx512bw+avx2x4" if "avx512bw" in flags else "avx2" if "avx2" in flags else "sse2"
    assert M.simd() == f"gate {gate}, digit shapes {shapes}"


CAPPED = r"""
import hashlib, json, sys
from graphwarden.masking import Masker
from graphwarden.masking.cli import corpus, image_request, prose
m = Masker.default()
print(m.simd())
for data in (corpus(1 << 18, dense=True), corpus(1 << 18, dense=False), prose(1 << 16), image_request(1 << 16)):
    s = m.stream()
    streamed = b"".join(s.feed(data[i:i + 300]) for i in range(0, len(data), 300)) + s.finish()
    print(hashlib.sha256(m.mask(data)).hexdigest(), hashlib.sha256(streamed).hexdigest(),
          hashlib.sha256(m.mask_json(json.dumps({"t": data.decode("latin-1")}).encode())).hexdigest())
"""


@pytest.mark.parametrize("level", ["sse2", "avx2", "avx512"])
def test_every_simd_level_masks_alike(level: str) -> None:
    """GRAPHWARDEN_SIMD caps the passes' vector instructions; every level masks the same texts
    (dense and digit-heavy corpora, prose, a base64 JSON request; block, stream and JSON) to
    the same bytes as the widest this CPU has."""
    def run(env_level: str | None) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "GRAPHWARDEN_SIMD"}
        if env_level is not None:
            env["GRAPHWARDEN_SIMD"] = env_level
        out = subprocess.run([sys.executable, "-c", CAPPED], env=env, capture_output=True, text=True, check=True)
        return out.stdout.splitlines()

    widest, capped = run(None), run(level)
    assert capped[1:] == widest[1:]
    assert len(capped) == 5
    order = ["sse2", "avx2", "avx512bw+avx2x4"]
    shapes = capped[0].rsplit(" ", 1)[1]
    cpu_shapes = widest[0].rsplit(" ", 1)[1]
    want = order[min(order.index(cpu_shapes), ["sse2", "avx2", "avx512"].index(level))]
    assert shapes == want, capped[0]
    if want == "sse2":
        assert capped[0].startswith("gate none")


def test_an_unknown_simd_level_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "GRAPHWARDEN_SIMD": "avx1024"}
    out = subprocess.run([sys.executable, "-c", "from graphwarden.masking import Masker; Masker.default()"],
                         env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "GRAPHWARDEN_SIMD=avx1024 is not one of avx512, avx2, sse2" in out.stderr
    # the gateway does not start, and says which setting is wrong and how to fix it
    out = subprocess.run([sys.executable, "-m", "graphwarden", "serve", "--upstream", "http://127.0.0.1:9",
                          "--port", "0"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "error at `environment: GRAPHWARDEN_SIMD`: GRAPHWARDEN_SIMD=avx1024" in out.stderr
    assert "fix: set it to avx512, avx2 or sse2" in out.stderr


@pytest.mark.parametrize("seed", range(6))
def test_single_values_are_found_alone_and_inside_json(seed: int) -> None:
    """Every value the oracle finds is found when it is the whole text, inside prose, and as a
    JSON string (where one raw pass, digit shapes included, may clear a document)."""
    fake = Faker()
    fake.seed_instance(seed)
    makers = [fake.phone_number, fake.credit_card_number, fake.ssn, fake.iban, fake.msisdn, fake.bban,
              lambda: fake.credit_card_number().replace("", " ")[1:-1], lambda: "+" + fake.msisdn()]
    for _ in range(150):
        value = random.Random(fake.random.random()).choice(makers)()
        for text in (value, f"ref {value}, thanks", f"{value}\n"):
            raw = text.encode()
            found = ORACLE.findings(raw)
            assert M.findings(raw) == found, text
            masked = json.loads(M.mask_json(json.dumps({"note": text}).encode()))["note"]
            assert (masked != text) == bool(found), (text, masked)


def test_uuids_ending_in_twelve_luhn_digits_survive_in_bodies_json_and_streams() -> None:
    # One random UUID in about 2,900 ends in 12 decimal digits that pass Luhn: a 12-digit card
    # number's shape. Masked, a run id in a response broke the client's next call (CI saw
    # `/runs/01a22d8d-934b-7461-bf00-[CARD]/join`).
    m = Masker.default()
    uid = b"01a22d8d-934b-7461-bf00-123456789015"
    assert m.mask(b"run " + uid + b" done") == b"run " + uid + b" done"
    doc = b'{"run_id": "' + uid + b'", "thread_id": "' + uid + b'"}'
    assert m.mask_json(doc) == doc
    for cut in range(len(doc) + 1):
        s = m.stream()
        assert s.feed(doc[:cut]) + s.feed(doc[cut:]) + s.finish() == doc
    # the same digits alone are a card number
    assert m.mask(b"card 123456789015") == b"card [CARD]"


def test_the_benchmark_corpus_carries_the_values_it_is_given() -> None:
    """`corpus(..., values=...)` (benchmarks/masking_values.py) puts one of the given values
    after each KiB, and only those: the engine finds one span per value, all of their entity;
    without `values`, every entry's fixtures as before."""
    from graphwarden.masking.cli import corpus as bench_corpus

    m = Masker.default()
    email = b"jane.doe@example.com"
    text = bench_corpus(1 << 16, dense=True, values=[email])
    found = m.findings(text)
    assert 60 <= text.count(email) == len(found)
    assert {e for e, _, _ in found} == {"EMAIL"}
    mixed = bench_corpus(1 << 16, dense=True)
    assert mixed == bench_corpus(1 << 16, dense=True, values=None) and len({e for e, _, _ in m.findings(mixed)}) > 10
