"""The default catalogue's fixtures, operator catalogues, and clear errors for bad entries."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graphwarden.masking import Masker, default_catalogue

CAT = default_catalogue()


@pytest.mark.parametrize("entry", [e for e in CAT.entries if e.enabled], ids=lambda e: e.id)
def test_positive_fixtures_are_masked_and_negatives_survive(entry) -> None:  # type: ignore[no-untyped-def]
    m = Masker.default()
    assert entry.positive and entry.negative, "every entry ships positive and negative fixtures"
    for text in entry.positive:
        sentence = f"note: {text} (end)".encode()
        out = m.mask(sentence)
        assert text.encode() not in out, (entry.id, text)
        assert any(i == entry.id for i, _, _ in m.matches(sentence)), (entry.id, text)
    for text in entry.negative:
        assert not [x for x in m.matches(text.encode()) if x[0] == entry.id], (entry.id, text)


def test_required_entities_are_there() -> None:
    on = {e.entity for e in CAT.entries if e.enabled}
    off = {e.entity for e in CAT.entries if not e.enabled}
    assert {"EMAIL", "CARD", "SSN", "IBAN", "PHONE", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "GITHUB_TOKEN",
            "GITLAB_TOKEN", "SLACK_TOKEN", "SLACK_WEBHOOK", "OPENAI_KEY", "ANTHROPIC_KEY", "STRIPE_KEY",
            "GOOGLE_API_KEY", "JWT", "BEARER_TOKEN", "BASIC_AUTH", "PRIVATE_KEY", "DB_PASSWORD"} <= on
    assert off == {"IP_ADDRESS"}
    assert Masker.default().mask(b"host 10.1.2.3") == b"host 10.1.2.3"


def test_operator_catalogue_adds_overrides_and_switches(tmp_path: Path) -> None:
    f = tmp_path / "ops.toml"
    f.write_text("""
hash_key = "0101010101010101010101010101010101010101010101010101010101010101"
enable = ["ipv4"]
disable = ["phone"]
[[entries]]
id = "email"
action = "hash"
[[entries]]
id = "payment_card"
action = "partial"
[[entries]]
id = "employee_id"
entity = "EMPLOYEE_ID"
patterns = ['\\bEMP-\\d{6}\\b']
max_len = 10
positive = ["EMP-123456"]
negative = ["EMP-12"]
""")
    m = Masker.from_file(f)
    out = m.mask(b"a jo@ex.io b jo@ex.io c ann@ex.io card 4111 1111 1111 1111 ip 10.1.2.3 tel +14155550100 EMP-123456")
    tokens = re.findall(rb"\[EMAIL:[0-9a-f]{12}\]", out)
    assert len(tokens) == 3 and tokens[0] == tokens[1] != tokens[2]  # same value, same token
    assert b"**** **** **** 1111" in out
    assert b"[IP_ADDRESS]" in out and b"+14155550100" in out and b"[EMPLOYEE_ID]" in out
    # the same key gives the same token in another process / masker
    assert re.findall(rb"\[EMAIL:[0-9a-f]{12}\]", Masker.from_file(f).mask(b"jo@ex.io"))[0] == tokens[0]


@pytest.mark.parametrize(("body", "fragment"), [
    ("[[entries]]\nid = 'bad'\nentity = 'X'\npatterns = ['(unclosed']\nmax_len = 5\n", "entry bad: pattern does not compile"),
    ("[[entries]]\nid = 'huge'\nentity = 'X'\npatterns = ['a{1,5}(?:b|c)*+']\nmax_len = 5\n", "entry huge"),
    ("[[entries]]\nid = 'x'\nentity = 'X'\npatterns = ['x']\nmax_len = 1\ncolour = 'red'\n", "unknown key"),
    ("disable = ['nope']\n", "no entry 'nope'"),
    ("[[entries]]\nid = 'email'\naction = 'explode'\n", "action"),
])
def test_bad_catalogues_are_refused_with_the_entry_named(tmp_path: Path, body: str, fragment: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(ValueError) as info:
        Masker.from_file(f)
    assert fragment in str(info.value)
