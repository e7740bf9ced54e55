"""Render a `Replay` as text (terminal), JSON (stable schema, docs/REPLAY.md) or HTML.

Every value in a replay that came from a request or a graph is masked but still untrusted text:
the text renderer neutralises control characters (no terminal escape sequences reach the
screen), the HTML renderer escapes every value and forbids all network access and scripts with
a Content-Security-Policy, so the file is safe to open and to hand over.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from graphwarden.replay.model import (
    ApprovalView,
    ErrorView,
    InterruptView,
    PrincipalView,
    Replay,
    RequestView,
    RunView,
    StepView,
    parse_ts,
)

FORMATS: tuple[str, ...] = ("text", "json", "html")

# Longest payload shown inline by the text renderer; JSON and HTML always carry the full value.
TEXT_PAYLOAD_MAX_CHARS = 240

# C0/C1 controls, DEL, and bidi/format characters that can disguise text on a terminal.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def render(replay: Replay, fmt: str) -> str:
    renderers: dict[str, Callable[[Replay], str]] = {
        "text": render_text,
        "json": render_json,
        "html": render_html,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return renderers[fmt](replay)


# --- json -------------------------------------------------------------------------------------


def to_dict(replay: Replay) -> dict[str, Any]:
    return dataclasses.asdict(replay)


def render_json(replay: Replay) -> str:
    return json.dumps(to_dict(replay), indent=2, ensure_ascii=False) + "\n"


# --- shared formatting ------------------------------------------------------------------------


def _compact(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"digest", "bytes"}:
        return f"digest {value['digest']} ({value['bytes']} bytes)"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _secs(ms: float | None) -> str:
    if ms is None:
        return "?"
    sign = "-" if ms < 0 else "+"
    return f"{sign}{abs(ms) / 1000.0:.3f}s"


def _who(p: PrincipalView | None) -> str:
    if p is None:
        return "unknown principal"
    name = p.subject or "?"
    if p.display_name:
        name += f' "{p.display_name}"'
    if p.groups:
        name += " [" + ", ".join(p.groups) + "]"
    return name


def _auth(p: PrincipalView | None) -> str:
    if p is None:
        return ""
    parts = [f"via {p.auth_method or '?'}"]
    if p.token_id:
        parts.append(f"token {p.token_id}")
    if p.issuer:
        parts.append(f"issuer {p.issuer}")
    return ", ".join(parts)


def _verification_line(replay: Replay) -> str:
    v = replay.verification
    if v.status == "intact":
        through = ", ".join(f"chain {c} verified through seq {s}" for c, s in sorted(v.verified_through.items()))
        return f"VERIFIED: {through or 'no chains'}"
    head = "TAMPERED" if v.status == "tampered" else "INCOMPLETE"
    return f"{head}: {v.message}"


def _timeline(run: RunView) -> list[tuple[str, StepView | InterruptView | ErrorView]]:
    """Steps in step order, with interrupts and errors placed after the last earlier step."""
    items: list[tuple[str, StepView | InterruptView | ErrorView]] = [("step", s) for s in run.steps]
    extras: list[tuple[str, InterruptView | ErrorView]] = [("interrupt", i) for i in run.interrupts]
    extras += [("error", e) for e in run.errors]
    for kind, ev in extras:
        t = parse_ts(ev.ts)
        pos = len(items)
        if t is not None:
            for idx, (k, it) in enumerate(items):
                it_t = parse_ts(it.ts)
                if it_t is not None and it_t.tzinfo == t.tzinfo and it_t > t:
                    pos = idx
                    break
        items.insert(pos, (kind, ev))
    return items


def _approval_by_id(replay: Replay, aid: str | None) -> ApprovalView | None:
    for a in replay.approvals:
        if a.approval_id == aid:
            return a
    return None


def _unplaced_approvals(replay: Replay) -> list[ApprovalView]:
    """Approvals referenced only indirectly (e.g. the one that gated a resume in another run)."""
    placed = {run.approval_id for run in replay.runs} | {rv.approval_id for rv in replay.requests}
    return [a for a in replay.approvals if a.approval_id not in placed]


# --- text -------------------------------------------------------------------------------------


def _t(value: Any) -> str:
    """One line of untrusted text, safe for a terminal."""
    s = value if isinstance(value, str) else _compact(value)
    s = s.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return _UNSAFE_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


def _payload(value: Any) -> str:
    s = _t(_compact(value))
    if len(s) > TEXT_PAYLOAD_MAX_CHARS:
        s = s[:TEXT_PAYLOAD_MAX_CHARS] + f"... ({len(s)} chars, see --format json)"
    return s


def _text_request(rv: RequestView, indent: str) -> list[str]:
    out = [
        f"{indent}request {_t(rv.request_id)} at {_t(rv.ts or '?')}: {_t(rv.method or '?')} {_t(rv.path or '?')}"
        + (f" ({_t(rv.route)})" if rv.route else "")
    ]
    out.append(f"{indent}  by {_t(_who(rv.principal))} {_t(_auth(rv.principal))}" + (f" from {_t(rv.client_ip)}" if rv.client_ip else ""))
    dec = f"{indent}  decision {_t(rv.decision or '?')}"
    if rv.rule:
        dec += f" by rule {_t(rv.rule)}"
    if rv.reason:
        dec += f": {_t(rv.reason)}"
    if rv.approval_id:
        dec += f" (approval {_t(rv.approval_id)})"
    if rv.status is not None:
        dec += f", answered {rv.status} by the gateway"
    out.append(dec)
    if rv.response is not None:
        r = rv.response
        out.append(
            f"{indent}  response {r.status} {_t(r.outcome or '')} in {r.duration_ms} ms, "
            f"{r.bytes_in} B in / {r.bytes_out} B out" + (f", {r.events} events" if r.events is not None else "")
        )
    return out


def _text_approval(a: ApprovalView, indent: str) -> list[str]:
    out = [f"{indent}approval {_t(a.approval_id)}: state {_t(a.state or '?')}" + (f", rule {_t(a.rule)}" if a.rule else "")]
    out.append(f"{indent}  requested by {_t(_who(a.requester))} at {_t(a.created_at or '?')}")
    for ev in a.events:
        line = f"{indent}  {_t(ev.ts or '?')} {_t(ev.transition or '?')}"
        if ev.actor is not None:
            line += f" by {_t(_who(ev.actor))}"
        if ev.comment is not None:
            line += f": {_payload(ev.comment)}"
        out.append(line)
    out.append(f"{indent}  used: {'yes at ' + _t(a.used_at or '?') if a.used else 'no'}")
    return out


def render_text(replay: Replay) -> str:
    out = [f"graphwarden replay: {replay.query.kind} {_t(replay.query.id)}", _verification_line(replay)]
    for p in replay.verification.problems:
        out.append(f"  problem: {_t(p)}")
    for run in replay.runs:
        out.append("")
        out.append(f"run {_t(run.run_id)} (thread {_t(run.thread_id or '?')}, assistant {_t(run.assistant_id or '?')}), started {_t(run.started_at or '?')}")
        if run.cron_id is not None:
            out.append(f"  started by the server's scheduler for cron {_t(run.cron_id)}"
                       + ("; the cron was created by:" if run.started_by is not None else "; the cron's creation is not on record"))
        if run.started_by is not None:
            out += _text_request(run.started_by, "  ")
        a = _approval_by_id(replay, run.approval_id)
        if a is not None:
            out += _text_approval(a, "  ")
        if run.resumed_from is not None:
            rf = run.resumed_from
            out.append(f"  resumes the interrupt at {_t(rf.node or '?')} of run {_t(rf.run_id or '?')} ({_t(rf.ts or '?')}) with {_payload(run.resume)}")
        out.append(f"  input: {_payload(run.input)}")
        out.append("  timeline:")
        if not run.steps and not run.interrupts and not run.errors:
            out.append("    (no steps recorded)")
        for kind, ev in _timeline(run):
            if isinstance(ev, StepView):
                ns = "/".join(ev.namespace)
                where = f"{_t(ns)}:" if ns else ""
                flag = "" if ev.verified else " UNVERIFIED"
                out.append(
                    f"    {_secs(ev.offset_ms):>10} (+{(ev.delta_ms or 0) / 1000:.3f}s) step {ev.step} {where}{_t(ev.node or '?')} [{_t(ev.source or '?')}]{flag}"
                )
                out.append(f"        {_payload(ev.data)}")
            elif isinstance(ev, InterruptView):
                out.append(f"    {_secs(ev.offset_ms):>10} INTERRUPT at {_t(ev.node or '?')}: {_payload(ev.value)}")
                if ev.resumed_by is not None:
                    rb = ev.resumed_by
                    out.append(
                        f"        resumed by request {_t(rb.request_id)} (run {_t(rb.run_id or '?')}) of {_t(rb.subject or '?')} at {_t(rb.ts or '?')}"
                        + (f", approval {_t(rb.approval_id)}" if rb.approval_id else "")
                    )
                else:
                    out.append("        not resumed in this trail")
            else:
                out.append(f"    {_secs(ev.offset_ms):>10} ERROR {_t(ev.error)}: {_payload(ev.message)}")
        if run.outcome is not None:
            o = run.outcome
            out.append(
                f"  outcome: run {_t(o.run_status or 'unknown')}, HTTP {o.status} {_t(o.outcome or '')}, "
                f"{o.duration_ms} ms, {o.bytes_in} B in / {o.bytes_out} B out"
                + (f", {o.events} events" if o.events is not None else "")
            )
            if o.output is not None:
                out.append(f"  output: {_payload(o.output)}")
        else:
            out.append("  outcome: not recorded")
        for rv in run.other_requests:
            out.append("  related:")
            out += _text_request(rv, "    ")
        for g in run.gaps:
            out.append(f"  GAP {g.code}: {_t(g.message)}")
    if replay.requests:
        out.append("")
        out.append("requests that started no run:")
        for rv in replay.requests:
            out += _text_request(rv, "  ")
            a = _approval_by_id(replay, rv.approval_id)
            if a is not None and not any(run.approval_id == a.approval_id for run in replay.runs):
                out += _text_approval(a, "    ")
    others = _unplaced_approvals(replay)
    if others:
        out.append("")
        out.append("approvals referenced by this replay:")
        for a in others:
            out += _text_approval(a, "  ")
    if replay.gaps:
        out.append("")
        for g in replay.gaps:
            out.append(f"GAP {g.code}: {_t(g.message)}")
    return "\n".join(out) + "\n"


# --- html -------------------------------------------------------------------------------------


def _a(value: Any) -> str:
    """An attribute value: always a plain escaped string, never markup."""
    return html.escape("" if value is None else str(value), quote=True)


def _e(value: Any) -> str:
    if value is None:
        return '<span class="none">none</span>'
    s = value if isinstance(value, str) else _compact(value)
    s = _UNSAFE_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", s)
    return html.escape(s, quote=True)


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#1d2430;background:#f4f6f9}
main{max-width:1180px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:6px;border-bottom:2px solid #d5dbe4}
h3{font-size:14px;text-transform:uppercase;letter-spacing:.05em;color:#5a6473;margin:18px 0 8px}
code,pre,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
h1 .mono,h2 .mono{font-size:.9em}
.banner{padding:14px 24px;color:#fff}
.banner .inner{max-width:1180px;margin:0 auto}
.banner.ok{background:#1e7a3c}.banner.bad{background:#b3261e}.banner.warn{background:#a15c00}
.banner ul{margin:6px 0 0 18px;padding:0}
.meta{color:#5a6473;font-size:13px}
.cards{display:grid;grid-template-columns:1fr;gap:12px}
@media (min-width:860px){.cards{grid-template-columns:repeat(3,minmax(0,1fr))}.card.approval{grid-column:1/-1}}
.card{background:#fff;border:1px solid #d5dbe4;border-radius:8px;padding:12px 14px;min-width:0;overflow-wrap:anywhere}
.card h4{margin:0 0 8px;font-size:13px;color:#5a6473;text-transform:uppercase;letter-spacing:.05em}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 10px;margin:0}
.card dt{color:#5a6473}.card dd{margin:0;overflow-wrap:anywhere}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e3e8ef}
.pill.allow,.pill.approved,.pill.success,.pill.ok{background:#d3f0dc;color:#14532d}
.pill.deny,.pill.denied,.pill.error,.pill.expired,.pill.approval_denied{background:#fbd9d6;color:#7f1d1d}
.pill.approval_pending,.pill.pending,.pill.interrupted,.pill.vote{background:#fdeccc;color:#6b3e00}
ol.votes{margin:4px 0 0;padding-left:18px}ol.votes li{margin:3px 0}
.comment{display:block;color:#37404d;font-style:italic;overflow-wrap:anywhere}
ol.timeline{list-style:none;margin:0;padding:0;border-left:3px solid #c3cbd6;margin-left:8px}
ol.timeline li{position:relative;background:#fff;border:1px solid #d5dbe4;border-radius:8px;margin:0 0 10px 16px;padding:8px 12px}
ol.timeline li::before{content:"";position:absolute;left:-25px;top:12px;width:12px;height:12px;border-radius:50%;background:#5470c6;border:2px solid #f4f6f9}
ol.timeline li.interrupt::before{background:#d98b00}ol.timeline li.error::before{background:#b3261e}
ol.timeline li.interrupt{border-color:#e8b45a}ol.timeline li.error{border-color:#e0827b}
.row{display:grid;grid-template-columns:110px 1fr 260px;gap:12px;align-items:center}
.when{font-family:"DejaVu Sans Mono",monospace;font-size:12.5px;color:#37404d}
.when small{display:block;color:#7a8494}
.what{min-width:0;overflow-wrap:anywhere}
.what b{font-size:14.5px}
.bar{height:10px;background:#eef1f5;border-radius:5px;position:relative;overflow:hidden}
.bar span{position:absolute;top:0;bottom:0;background:#5470c6;border-radius:5px;min-width:2px}
li.interrupt .bar span{background:#d98b00}li.error .bar span{background:#b3261e}
details{margin-top:6px}
summary{cursor:pointer;color:#3451a6;font-size:12.5px}
pre{background:#f7f8fa;border:1px solid #e3e8ef;border-radius:6px;padding:8px 10px;margin:6px 0 0;white-space:pre-wrap;overflow-wrap:anywhere;max-height:420px;overflow:auto}
.tag{font-size:11.5px;color:#5a6473;border:1px solid #c3cbd6;border-radius:4px;padding:0 5px;margin-left:6px}
.tag.warn{color:#7f1d1d;border-color:#e0827b}
.gaps{background:#fff7e6;border:1px solid #e8b45a;border-radius:8px;padding:8px 14px}
.gaps li{margin:3px 0}
.none{color:#98a1ae;font-style:italic}
footer{max-width:1180px;margin:0 auto;padding:0 24px 30px;color:#7a8494;font-size:12px}
"""


def _pill(value: str | None) -> str:
    if value is None:
        return '<span class="none">unknown</span>'
    cls = re.sub(r"[^a-z_]", "", value.lower())
    return f'<span class="pill {cls}">{_e(value)}</span>'


def _hts(ts: str | None, *, time_only: bool = False) -> str:
    """A readable timestamp as HTML, with the exact recorded value in the tooltip."""
    t = parse_ts(ts)
    if t is None:
        return _e(ts)
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    shown = t.strftime("%H:%M:%S.%f")[:-3] if time_only else t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return f'<time datetime="{_a(ts)}" title="{_a(ts)}">{_e(shown)}</time>'


def _json_details(label: str, value: Any, *, open_: bool = False) -> str:
    if value is None:
        return f'<div class="meta">{_e(label)}: <span class="none">none</span></div>'
    if isinstance(value, dict) and set(value) == {"digest", "bytes"}:
        return f'<div class="meta">{_e(label)}: digest <code>{_e(value["digest"])}</code> ({_e(str(value["bytes"]))} bytes, level "digest")</div>'
    attr = " open" if open_ else ""
    return f"<details{attr}><summary>{_e(label)}</summary><pre>{_e(_pretty(value))}</pre></details>"


def _dl(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _identity_card(rv: RequestView) -> str:
    p = rv.principal
    rows = [
        ("subject", _e(p.subject if p else None)),
        ("name", _e(p.display_name if p else None)),
        ("groups", _e(", ".join(p.groups)) if p and p.groups else _e(None)),
        ("auth", _e(p.auth_method if p else None)),
        ("token id", f'<span class="mono">{_e(p.token_id if p else None)}</span>'),
        ("issuer", _e(p.issuer if p else None)),
        ("client ip", _e(rv.client_ip)),
    ]
    return f'<div class="card"><h4>Who started it</h4>{_dl(rows)}</div>'


def _decision_card(rv: RequestView) -> str:
    rows = [
        ("request", f'<span class="mono">{_e(rv.request_id)}</span>'),
        ("at", _hts(rv.ts)),
        ("call", _e(f"{rv.method or '?'} {rv.path or '?'}")),
        ("route", _e(rv.route)),
        ("decision", _pill(rv.decision)),
        ("rule", _e(rv.rule)),
    ]
    if rv.reason:
        rows.append(("reason", _e(rv.reason)))
    if rv.status is not None:
        rows.append(("answered", _e(f"{rv.status} by the gateway")))
    if rv.stream_mode is not None:
        rows.append(("stream mode", _e(rv.stream_mode)))
    return f'<div class="card"><h4>Policy decision</h4>{_dl(rows)}</div>'


def _approval_card(a: ApprovalView) -> str:
    rows = [
        ("approval", f'<span class="mono">{_e(a.approval_id)}</span>'),
        ("state", _pill(a.state)),
        ("rule", _e(a.rule)),
        ("requested by", _e(_who(a.requester))),
        ("created", _hts(a.created_at)),
        ("used", ("yes, " + _hts(a.used_at)) if a.used else _e("no")),
    ]
    votes = []
    for ev in a.events:
        actor = f" by <b>{_e(_who(ev.actor))}</b>" if ev.actor is not None else ""
        comment = f'<span class="comment">&ldquo;{_e(ev.comment)}&rdquo;</span>' if ev.comment is not None else ""
        votes.append(f"<li>{_pill(ev.transition)}{actor} <span class=\"meta\">{_hts(ev.ts)}</span>{comment}</li>")
    return (
        f'<div class="card approval"><h4>Approval</h4>{_dl(rows)}'
        f'<ol class="votes">{"".join(votes)}</ol></div>'
    )


def _outcome_card(run: RunView) -> str:
    o = run.outcome
    if o is None:
        return '<div class="card"><h4>Outcome</h4><span class="none">no response recorded</span></div>'
    rows = [
        ("run status", _pill(o.run_status)),
        ("http", _e(f"{o.status} {o.outcome or ''}")),
        ("duration", _e(f"{o.duration_ms} ms" if o.duration_ms is not None else None)),
        ("bytes", _e(f"{o.bytes_in} in / {o.bytes_out} out")),
        ("events", _e(str(o.events) if o.events is not None else None)),
        ("ended", _hts(o.ended_at)),
    ]
    return f'<div class="card"><h4>Outcome</h4>{_dl(rows)}{_json_details("masked output", o.output)}</div>'


def _bar(start_ms: float | None, end_ms: float | None, span_ms: float) -> str:
    if end_ms is None or span_ms <= 0:
        return '<div class="bar"></div>'
    s = max(0.0, min(start_ms if start_ms is not None else end_ms, end_ms))
    left = 100.0 * s / span_ms
    width = max(0.0, 100.0 * (end_ms - s) / span_ms)
    left = min(left, 100.0)
    width = min(width, 100.0 - left)
    return f'<div class="bar" title="{end_ms - s:.1f} ms"><span style="left:{left:.2f}%;width:{width:.2f}%"></span></div>'


def _run_link(replay: Replay, run_id: str | None) -> str:
    """A link to a run shown in this file; plain text for a run outside the replay."""
    if run_id is not None and any(r.run_id == run_id for r in replay.runs):
        return f'<a class="mono" href="#run-{_a(run_id)}">{_e(run_id)}</a>'
    return f'<span class="mono">{_e(run_id)}</span>'


def _html_run(replay: Replay, run: RunView) -> str:
    parts = [
        f'<section class="run" id="run-{_a(run.run_id)}">',
        f'<h2>Run <span class="mono">{_e(run.run_id)}</span></h2>',
        f'<div class="meta">thread <span class="mono">{_e(run.thread_id)}</span> &middot; assistant {_e(run.assistant_id)} &middot; started {_hts(run.started_at)}</div>',
    ]
    if run.cron_id is not None:
        parts.append(f'<div class="meta">started by the server\'s scheduler for cron <span class="mono">{_e(run.cron_id)}</span>; '
                     + ('who and what below: the request that created the cron</div>' if run.started_by is not None
                        else 'the cron\'s creation is not on record</div>'))
    parts += [
        '<h3>Identity, decision, approval, outcome</h3><div class="cards">',
    ]
    if run.started_by is not None:
        parts.append(_identity_card(run.started_by))
        parts.append(_decision_card(run.started_by))
    else:
        parts.append('<div class="card"><h4>Who started it</h4><span class="none">no request record</span></div>')
    parts.append(_outcome_card(run))
    a = _approval_by_id(replay, run.approval_id)
    if a is not None:
        parts.append(_approval_card(a))
    parts.append("</div>")
    if run.resumed_from is not None:
        rf = run.resumed_from
        parts.append(
            f'<p class="meta">Resumes the interrupt at <b>{_e(rf.node)}</b> of run '
            f'{_run_link(replay, rf.run_id)} ({_hts(rf.ts)}).</p>'
        )
        parts.append(_json_details("resume value (masked)", run.resume))
    parts.append("<h3>Input</h3>")
    parts.append(_json_details("masked input", run.input, open_=True))
    parts.append("<h3>Timeline</h3>")
    items = _timeline(run)
    offsets = [ev.offset_ms for _, ev in items if ev.offset_ms is not None]
    span = max([*offsets, run.outcome.duration_ms if run.outcome and run.outcome.duration_ms else 0.0, 0.0])
    if not items:
        parts.append('<p class="none">no steps recorded</p>')
    parts.append('<ol class="timeline">')
    prev: float | None = 0.0
    for kind, ev in items:
        when = f'<div class="when">{_e(_secs(ev.offset_ms))}'
        if isinstance(ev, StepView):
            when += f"<small>&Delta; {_e(_secs(ev.delta_ms))}</small>"
        when += f"<small>{_hts(ev.ts, time_only=True)}</small></div>"
        bar = _bar(prev, ev.offset_ms, span)
        if isinstance(ev, StepView):
            ns = "/".join(ev.namespace)
            tags = f'<span class="tag">{_e(ev.source)}</span>'
            if ev.in_stream and ev.in_history:
                tags += '<span class="tag">also in history</span>'
            if not ev.verified:
                tags += '<span class="tag warn">unverified</span>'
            what = (
                f'<div class="what">step {_e(str(ev.step) if ev.step is not None else "?")} &middot; '
                f"<b>{_e((ns + ':') if ns else '')}{_e(ev.node)}</b>{tags}</div>"
            )
            body = _json_details("masked update", ev.data)
            prev = ev.offset_ms
        elif isinstance(ev, InterruptView):
            what = f'<div class="what">interrupt at <b>{_e(ev.node)}</b></div>'
            body = _json_details("interrupt value (masked)", ev.value, open_=True)
            if ev.resumed_by is not None:
                rb = ev.resumed_by
                appr = f", approval <span class=\"mono\">{_e(rb.approval_id)}</span>" if rb.approval_id else ""
                body += (
                    f'<div class="meta">resumed by request <span class="mono">{_e(rb.request_id)}</span> of <b>{_e(rb.subject)}</b> '
                    f'at {_hts(rb.ts)} &rarr; run {_run_link(replay, rb.run_id)}{appr}</div>'
                )
            else:
                body += '<div class="meta">not resumed in this trail</div>'
        else:
            what = f'<div class="what">error <b>{_e(ev.error)}</b></div>'
            body = f'<pre>{_e(ev.message)}</pre>'
        parts.append(f'<li class="{kind}"><div class="row">{when}{what}{bar}</div>{body}</li>')
    parts.append("</ol>")
    if run.other_requests:
        parts.append("<h3>Related requests</h3><ul>")
        for rv in run.other_requests:
            parts.append(
                f'<li><span class="mono">{_e(rv.request_id)}</span> {_e(rv.method)} {_e(rv.path)} by {_e(_who(rv.principal))}: {_pill(rv.decision)}</li>'
            )
        parts.append("</ul>")
    if run.gaps:
        parts.append('<h3>Gaps in the evidence</h3><ul class="gaps">')
        parts += [f"<li><b>{_e(g.code)}</b>: {_e(g.message)}</li>" for g in run.gaps]
        parts.append("</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(replay: Replay) -> str:
    v = replay.verification
    if v.status == "intact":
        cls = "ok"
        head = "; ".join(f"chain {c} verified through seq {s}" for c, s in sorted(v.verified_through.items())) or "chain verified"
        head = "&#10003; " + _e(head)
    else:
        cls = "bad"
        head = ("&#9888; TAMPERED trail: " if v.status == "tampered" else "&#9888; INCOMPLETE trail: ") + _e(v.message)
    problems = "".join(f"<li>{_e(p)}</li>" for p in v.problems)
    if v.status == "incomplete":
        through = "; ".join(f"chain {c} verified through seq {s}" for c, s in sorted(v.verified_through.items()))
        problems += f"<li>{_e(through or 'no record verified')}</li>"
    if replay.unverified_refs:
        problems += f"<li>{len(replay.unverified_refs)} record(s) shown below lie outside the verified range and are marked &ldquo;unverified&rdquo;</li>"
    title = f"graphwarden replay: {replay.query.kind} {replay.query.id}"
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # No scripts, no network: even a value that escaped escaping could not fetch or run anything.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f'<div class="banner {cls}" id="verification" data-status="{_a(v.status)}"><div class="inner"><b>{head}</b>'
        + (f"<ul>{problems}</ul>" if problems else "")
        + "</div></div>",
        "<main>",
        f"<h1>Replay of {_e(replay.query.kind)} <span class=\"mono\">{_e(replay.query.id)}</span></h1>",
        f'<div class="meta">{len(replay.runs)} run(s), {sum(len(r.steps) for r in replay.runs)} step(s); values are masked as recorded in the audit trail</div>',
    ]
    body += [_html_run(replay, run) for run in replay.runs]
    if replay.requests:
        body.append("<h2>Requests that started no run</h2><div class=\"cards\">")
        for rv in replay.requests:
            body.append(_identity_card(rv))
            body.append(_decision_card(rv))
            a = _approval_by_id(replay, rv.approval_id)
            if a is not None and not any(run.approval_id == a.approval_id for run in replay.runs):
                body.append(_approval_card(a))
        body.append("</div>")
    others = _unplaced_approvals(replay)
    if others:
        body.append('<h2>Approvals referenced by this replay</h2><div class="cards">')
        body += [_approval_card(a) for a in others]
        body.append("</div>")
    if replay.gaps:
        body.append('<h2>Gaps in the evidence</h2><ul class="gaps">')
        body += [f"<li><b>{_e(g.code)}</b>: {_e(g.message)}</li>" for g in replay.gaps]
        body.append("</ul>")
    body.append("</main>")
    body.append(f"<footer>generated by graphwarden replay at {_e(generated)} &middot; replay schema v{replay.schema_version}</footer>")
    body.append("</body></html>")
    return "\n".join(body) + "\n"
