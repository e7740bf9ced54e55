"""A pure-Python reference for the masking engine: Python's `re` over the same catalogue
patterns, the same validators, the same union rule. The engine must agree on every span."""

from __future__ import annotations

import re
from collections.abc import Sequence

from graphwarden.masking import Entry


def luhn(t: bytes) -> bool:
    d = [c - 48 for c in t if 48 <= c <= 57]
    if not 12 <= len(d) <= 19:
        return False
    s = 0
    for i, x in enumerate(reversed(d)):
        if i % 2:
            x *= 2
            if x > 9:
                x -= 9
        s += x
    return s % 10 == 0


def ssn(t: bytes) -> bool:
    d = [c - 48 for c in t if 48 <= c <= 57]
    if len(d) != 9:
        return False
    area = d[0] * 100 + d[1] * 10 + d[2]
    group = d[3] * 10 + d[4]
    serial = int("".join(map(str, d[5:])))
    return area not in (0, 666) and area < 900 and group != 0 and serial != 0


def iban(t: bytes) -> bool:
    s = bytes(c for c in t if c not in b" -").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    r = s[4:] + s[:4]
    num = "".join(str(c - 48) if 48 <= c <= 57 else str(c - 55) if 65 <= c <= 90 else "x" for c in r)
    return "x" not in num and int(num) % 97 == 1


def basic_auth(t: bytes) -> bool:
    import base64
    import binascii

    core = t.rstrip(b"=")
    try:
        raw = base64.b64decode(core + b"=" * (-len(core) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 3 and b":" in raw and all(0x20 <= c < 0x7F for c in raw)


_UUID_TAIL = re.compile(rb"(?<![A-Za-z0-9])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-\Z")


def uuid_tail(text: bytes, s: int, t: int) -> bool:
    """`text[s:t]` is the 12-digit last group of a UUID (the Luhn validator rejects those)."""
    after = text[t:t + 1]
    return (t - s == 12 and text[s:t].isdigit() and s >= 24 and _UUID_TAIL.search(text, s - 24, s) is not None
            and not after.isalnum())


VALIDATORS = {"none": lambda t: True, "luhn": luhn, "ssn": ssn, "iban": iban, "basic_auth": basic_auth}


class Oracle:
    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = [e for e in entries if e.enabled]
        self.compiled = [(i, re.compile(p.encode())) for i, e in enumerate(self.entries) for p in e.patterns]

    def matches(self, text: bytes) -> list[tuple[str, int, int]]:
        out = []
        for i, rx in self.compiled:
            e = self.entries[i]
            pos = 0
            while pos <= len(text):
                m = rx.search(text, pos)
                if m is None:
                    break
                s, t = m.span(e.group)
                valid = (t > s and m.end() - m.start() <= e.max_len and VALIDATORS[e.validator](text[s:t])
                         and not (e.validator == "luhn" and uuid_tail(text, s, t)))
                if valid:
                    out.append((e.id, s, t))
                pos = m.end() if valid and m.end() > m.start() else m.start() + 1
        return sorted(out, key=lambda x: (x[1], x[2], [e.id for e in self.entries].index(x[0])))

    def findings(self, text: bytes) -> list[tuple[str, int, int]]:
        order = {e.id: i for i, e in enumerate(self.entries)}
        spans = sorted((s, t, order[i]) for i, s, t in self.matches(text))
        merged: list[list[int]] = []
        for s, t, pri in spans:
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], t)
                merged[-1][2] = min(merged[-1][2], pri)
            else:
                merged.append([s, t, pri])
        return [(self.entries[p].entity, s, t) for s, t, p in merged]
