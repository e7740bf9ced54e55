"""Renderers: text is terminal-safe, JSON follows the documented schema, HTML escapes everything."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from trail import HOSTILE, hostile_run, interrupted_then_approved_resume

from graphwarden.replay import QueryKind, Verification, build_replay
from graphwarden.replay.render import render


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def test_json_schema_top_level_and_run_fields() -> None:
    t = interrupted_then_approved_resume()
    doc = json.loads(render(build_replay(t.records, t.intact(), QueryKind.THREAD, "T1"), "json"))
    assert list(doc) == ["schema_version", "query", "verification", "runs", "requests", "approvals", "gaps", "unverified_refs"]
    assert doc["query"] == {"kind": "thread", "id": "T1"}
    assert doc["verification"]["verified_through"] == {"gw-0": 16, "gw-1": 3}
    run = doc["runs"][0]
    assert list(run) == [
        "run_id", "thread_id", "assistant_id", "started_at", "started_by", "approval_id", "input", "resume",
        "resumed_from", "steps", "interrupts", "errors", "outcome", "other_requests", "gaps", "cron_id"]
    assert list(run["steps"][0]) == [
        "step", "node", "namespace", "source", "ts", "offset_ms", "delta_ms", "data", "request_id",
        "in_stream", "in_history", "verified", "ref"]
    assert run["steps"][0]["ref"] == "gw-0#3"
    assert doc["approvals"][0]["events"][1]["actor"]["subject"] == "bob"


def test_text_output_is_a_readable_timeline() -> None:
    t = interrupted_then_approved_resume()
    text = render(build_replay(t.records, t.intact(), QueryKind.THREAD, "T1"), "text")
    assert "VERIFIED: chain gw-0 verified through seq 16, chain gw-1 verified through seq 3" in text
    assert text.index("step 1 ingest") < text.index("step 2 lookup") < text.index("INTERRUPT at review")
    assert text.index("INTERRUPT at review") < text.index("step 3 review") < text.index("step 4 refund")
    assert 'approved by carol "Carol Diaz"' in text and "amount matches invoice" in text
    assert "resumed by request req-3 (run R2)" in text


def test_text_output_neutralises_terminal_escapes() -> None:
    t = hostile_run()
    text = render(build_replay(t.records, t.intact(), QueryKind.RUN, "R30"), "text")
    assert "\x1b" not in text and "\x07" not in text
    assert "\\u001b[2J" in text


def test_html_escapes_hostile_values_everywhere() -> None:
    t = hostile_run()
    page = render(build_replay(t.records, t.intact(), QueryKind.RUN, "R30"), "html")
    assert HOSTILE not in page
    assert "<img" not in page and "<svg" not in page
    assert page.count("<script") == 0
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    parser = _Tags()
    parser.feed(page)
    assert "img" not in parser.tags and "script" not in parser.tags and "svg" not in parser.tags
    assert not [a for a in parser.attrs if a[1].startswith("on")]
    assert "\x1b" not in page


def test_html_is_self_contained() -> None:
    t = interrupted_then_approved_resume()
    page = render(build_replay(t.records, t.intact(), QueryKind.THREAD, "T1"), "html")
    parser = _Tags()
    parser.feed(page)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parser.tags)
    for tag, name, value in parser.attrs:
        if name in ("href", "src", "action", "srcset", "poster"):
            assert value is not None and value.startswith("#"), (tag, name, value)
    assert "url(" not in page and "@import" not in page
    assert "default-src 'none'" in page  # CSP: nothing may be fetched even by mistake
    # Every step, the approvers and their comments are on the page.
    for needle in ("ingest", "lookup", "review", "refund", "Bob Stone", "Carol Diaz", "amount matches invoice"):
        assert needle in page


def test_html_banner_reflects_verification() -> None:
    t = interrupted_then_approved_resume()
    ok = render(build_replay(t.records, t.intact(), QueryKind.RUN, "R1"), "html")
    assert re.search(r'class="banner ok"[^>]*data-status="intact"', ok)
    assert "chain gw-0 verified through seq 16" in ok
    bad = Verification("incomplete", "torn tail in gw-0", {"gw-0": 3}, ["gw-0: record 4 truncated"])
    page = render(build_replay(t.records, bad, QueryKind.RUN, "R1"), "html")
    assert 'class="banner bad"' in page and "INCOMPLETE" in page and "record 4 truncated" in page
    assert "unverified" in page


def test_digest_payloads_are_shown_as_digests() -> None:
    t = interrupted_then_approved_resume()
    replay = build_replay(t.records, t.intact(), QueryKind.RUN, "R2")
    page = render(replay, "html")
    assert "digest <code>" + "ab" * 32 + "</code> (2048 bytes" in page
    assert "digest " + "ab" * 32 + " (2048 bytes)" in render(replay, "text")


def test_library_render_of_a_tampered_trail_is_loudly_marked() -> None:
    t = interrupted_then_approved_resume()
    v = Verification("tampered", "hash mismatch at gw-0 seq 3", {"gw-0": 2}, ["gw-0 seq 3: digest differs"])
    replay = build_replay(t.records, v, QueryKind.RUN, "R1")
    page = render(replay, "html")
    assert 'class="banner bad"' in page and "TAMPERED trail: hash mismatch at gw-0 seq 3" in page
    assert render(replay, "text").splitlines()[1] == "TAMPERED: hash mismatch at gw-0 seq 3"


def test_approval_gating_a_later_resume_is_shown_with_the_interrupted_run() -> None:
    t = interrupted_then_approved_resume()
    replay = build_replay(t.records, t.intact(), QueryKind.RUN, "R1")
    text = render(replay, "text")
    assert "approvals referenced by this replay:" in text and 'approved by carol "Carol Diaz"' in text
    page = render(replay, "html")
    assert "Approvals referenced by this replay" in page and "Carol Diaz" in page
