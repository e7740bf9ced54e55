"""Evaluation corpus: PII and secrets embedded in sentences, JSON and SSE frames, next to
look-alikes that must survive (UUIDs, timestamps, git hashes, order numbers, numbers failing
Luhn or mod-97). Reports recall and precision per entity; targets: no secret leaks at all,
PII recall >= 99 %, precision >= 97 %."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import defaultdict

from faker import Faker

from graphwarden.masking import Masker, default_catalogue

SECRETS = {e.entity: list(e.positive) for e in default_catalogue().entries if e.enabled and e.kind == "secret"}
_GROUPED = [(re.compile(p), e.group) for e in default_catalogue().entries if e.enabled and e.group for p in e.patterns]


def core(value: str) -> str:
    """The part of a planted secret that must not survive (a keyword-anchored entry masks only
    its capture group, e.g. the key after "aws_secret_access_key =")."""
    for rx, group in _GROUPED:
        m = rx.search(value)
        if m:
            return m.group(group)
    return value


def _phone(rnd: random.Random) -> str:
    a, b, c = rnd.randint(200, 989), rnd.randint(200, 999), rnd.randint(0, 9999)
    return rnd.choice([f"+1{a}{b}{c:04d}", f"+1 {a} {b} {c:04d}", f"({a}) {b}-{c:04d}", f"{a}-{b}-{c:04d}",
                       f"+44 20 {rnd.randint(1000, 9999)} {rnd.randint(1000, 9999)}", f"+49 30 {rnd.randint(100000, 999999)}"])


def _lookalike(rnd: random.Random, fake: Faker) -> str:
    card = fake.credit_card_number()
    bad_card = card[:-1] + str((int(card[-1]) + 1) % 10)
    iban = fake.iban()
    bad_iban = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
    return rnd.choice([
        str(uuid.UUID(int=rnd.getrandbits(128))), fake.iso8601(), f"{rnd.getrandbits(160):040x}",
        f"order #{rnd.randint(10**7, 10**9)}", bad_card, bad_iban, f"v{rnd.randint(1, 9)}.{rnd.randint(0, 20)}.{rnd.randint(0, 99)}",
        f"{rnd.randint(1, 28):02d}/{rnd.randint(1, 12):02d}/{rnd.randint(1990, 2030)}", fake.user_name(), f"INV-{rnd.randint(10**5, 10**6)}",
    ])


def build(seed: int, n: int = 400) -> tuple[list[bytes], list[list[tuple[str, str]]]]:
    """Documents and, for each, the planted (entity, value) pairs."""
    rnd = random.Random(seed)
    fake = Faker()
    fake.seed_instance(seed)
    docs, truth = [], []
    for _ in range(n):
        planted: list[tuple[str, str]] = []
        words: list[str] = []
        for _ in range(rnd.randint(3, 8)):
            r = rnd.random()
            if r < 0.35:
                kind = rnd.choice(["EMAIL", "CARD", "SSN", "IBAN", "PHONE", "SECRET"])
                if kind == "EMAIL":
                    v = fake.email()
                elif kind == "CARD":
                    v = fake.credit_card_number()
                    if rnd.random() < 0.5 and len(v) == 16:
                        sep = rnd.choice([" ", "-"])
                        v = sep.join(v[i:i + 4] for i in range(0, 16, 4))
                elif kind == "SSN":
                    v = fake.ssn()
                elif kind == "IBAN":
                    v = fake.iban()
                elif kind == "PHONE":
                    v = _phone(rnd)
                else:
                    kind, values = rnd.choice(sorted(SECRETS.items()))
                    v = rnd.choice(values)
                planted.append((kind, v))
                words.append(v)
            elif r < 0.6:
                words.append(_lookalike(rnd, fake))
            else:
                words.append(fake.sentence())
        text = " ".join(words)
        shape = rnd.random()
        if shape < 0.3:
            doc = json.dumps({"input": {"text": text}, "metadata": {"n": rnd.randint(0, 99)}}).encode()
        elif shape < 0.4:
            # structured input (a tool's arguments): an AWS secret under its key, a card number
            # as a JSON number, beside the text
            key = rnd.choice(["aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "awsSecretAccessKey"])
            secret = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+") for _ in range(40))
            card = fake.credit_card_number()
            planted += [("AWS_SECRET_KEY", secret), ("CARD", card)]
            doc = json.dumps({"input": {"text": text, "credentials": {key: secret, "region": "eu-west-1"},
                                        "payment": {"card": int(card), "amount": rnd.randint(1, 999)}}}).encode()
        elif shape < 0.5:
            doc = b"event: values\ndata: " + json.dumps({"messages": [text]}).encode() + b"\n\n"
        else:
            doc = text.encode()
        docs.append(doc)
        truth.append(planted)
    return docs, truth


def test_recall_and_precision_per_entity() -> None:
    m = Masker.default()
    docs, truth = build(7)
    found = defaultdict(int)
    total = defaultdict(int)
    leaks: list[str] = []
    true_pos = false_pos = 0
    for doc, planted in zip(docs, truth):
        is_json = doc.startswith(b"{")
        if doc.startswith(b"event"):  # what the gateway does with an SSE frame
            splitter = m.native_sse_rewriter([])
            out = b"".join(x for x in splitter.feed(doc) if isinstance(x, bytes)) + splitter.finish()
        else:
            out = m.mask_json(doc) if is_json else m.mask(doc)
        for kind, value in planted:
            total[kind] += 1
            secret = core(value)
            rendered = json.dumps(secret)[1:-1].encode()
            if rendered in out or secret.encode() in out:
                leaks.append(f"{kind}: {value}")
            else:
                found[kind] += 1
        # precision: each finding must overlap a planted value
        text = doc.decode()
        spans = [(text.encode().find(v.encode()), len(v.encode())) for _, v in planted]
        for _entity, s, e in m.findings(doc):
            if any(p >= 0 and s < p + ln and p < e for p, ln in spans):
                true_pos += 1
            else:
                false_pos += 1
    report = {k: f"{found[k]}/{total[k]}" for k in sorted(total)}
    precision = true_pos / max(1, true_pos + false_pos)
    print("recall per entity:", report, f"precision {precision:.4f}")
    secret_kinds = set(SECRETS)
    assert not [x for x in leaks if x.split(":")[0] in secret_kinds], leaks
    for kind in ("EMAIL", "CARD", "SSN", "IBAN", "PHONE"):
        assert found[kind] / total[kind] >= 0.99, (kind, report, [x for x in leaks if x.startswith(kind)][:5])
    assert precision >= 0.97, precision
