"""Replay model: linking, ordering, de-duplication, timing, gaps, verification coverage."""

from __future__ import annotations

import dataclasses
import random

import pytest
from trail import BOB, CAROL, Trail, failed_run, interrupted_then_approved_resume, wait_run_from_history

from graphwarden.replay import QueryKind, UnknownId, Verification, build_replay
from graphwarden.replay.render import to_dict


def test_streamed_run_with_interrupt_links_the_approved_resume() -> None:
    t = interrupted_then_approved_resume()
    replay = build_replay(t.records, t.intact(), QueryKind.RUN, "R1")
    assert [r.run_id for r in replay.runs] == ["R1"]
    run = replay.runs[0]
    assert run.thread_id == "T1"
    assert run.started_by is not None and run.started_by.request_id == "req-1"
    p = run.started_by.principal
    assert p is not None
    assert (p.subject, p.display_name, p.groups, p.auth_method, p.token_id, p.issuer) == (
        "alice", "Alice Martin", ["analysts"], "oidc", "jti-a1", "https://idp.example")
    assert run.started_by.client_ip == "10.1.2.3"
    assert (run.started_by.decision, run.started_by.rule) == ("allow", "analysts-run")
    assert run.input == {"messages": [{"role": "user", "content": "refund order 42 to <EMAIL>"}]}
    assert [(s.step, s.node, s.source) for s in run.steps] == [(1, "ingest", "stream"), (2, "lookup", "stream")]
    # Step 1 was seen in the stream and again in history: kept once, the stream copy.
    assert run.steps[0].in_stream and run.steps[0].in_history
    assert not run.steps[1].in_history
    # request at +3 ms, run record +5, step 1 +40, step 2 +120 after that.
    assert run.steps[0].offset_ms == 45.0 and run.steps[0].delta_ms == 45.0
    assert run.steps[1].offset_ms == 165.0 and run.steps[1].delta_ms == 120.0
    [intr] = run.interrupts
    assert intr.node == "review" and intr.value == {"question": "approve refund of 129.50?"}
    assert intr.resumed_by is not None
    assert (intr.resumed_by.request_id, intr.resumed_by.run_id, intr.resumed_by.approval_id) == ("req-3", "R2", "apr_1")
    assert intr.resumed_by.subject == "alice"
    assert run.outcome is not None and run.outcome.run_status == "interrupted"
    assert run.outcome.duration_ms == 260.0 and run.outcome.bytes_out == 5321
    assert run.gaps == [] and replay.gaps == []
    assert replay.verification.status == "intact"


def test_resume_run_shows_the_approval_votes_and_the_interrupt_it_continues() -> None:
    t = interrupted_then_approved_resume()
    replay = build_replay(t.records, t.intact(), QueryKind.RUN, "R2")
    run = replay.runs[0]
    assert run.approval_id == "apr_1"
    assert run.resume == "yes"
    assert run.resumed_from is not None
    assert (run.resumed_from.run_id, run.resumed_from.node) == ("R1", "review")
    assert [(s.step, s.node) for s in run.steps] == [(3, "review"), (4, "refund")]
    [approval] = replay.approvals
    assert approval.approval_id == "apr_1" and approval.state == "used" and approval.used
    assert approval.rule == "refunds-need-approval"
    assert approval.requester is not None and approval.requester.subject == "alice"
    assert [(e.transition, e.actor.subject if e.actor else None, e.comment) for e in approval.events] == [
        ("created", None, None),
        ("vote", BOB["subject"], "amount matches invoice"),
        ("approved", CAROL["subject"], "ok, customer <PHONE_NUMBER> confirmed"),
        ("used", None, None),
    ]
    assert approval.events[2].actor is not None and approval.events[2].actor.display_name == "Carol Diaz"
    assert approval.attempts == ["req-2", "req-3"]
    assert run.outcome is not None and run.outcome.output == {"digest": "ab" * 32, "bytes": 2048}


def test_thread_replay_lists_runs_in_order_and_the_held_request() -> None:
    t = interrupted_then_approved_resume()
    replay = build_replay(t.records, t.intact(), QueryKind.THREAD, "T1")
    assert [r.run_id for r in replay.runs] == ["R1", "R2"]
    assert [rv.request_id for rv in replay.requests] == ["req-2"]
    assert replay.requests[0].decision == "approval_pending" and replay.requests[0].status == 202
    assert [a.approval_id for a in replay.approvals] == ["apr_1"]


def test_request_replay_finds_the_run_or_shows_the_request_alone() -> None:
    t = interrupted_then_approved_resume()
    by_req = build_replay(t.records, t.intact(), QueryKind.REQUEST, "req-3")
    assert [r.run_id for r in by_req.runs] == ["R2"]
    held = build_replay(t.records, t.intact(), QueryKind.REQUEST, "req-2")
    assert held.runs == [] and [rv.request_id for rv in held.requests] == ["req-2"]
    assert [a.approval_id for a in held.approvals] == ["apr_1"]


def test_wait_run_steps_come_from_history_without_gaps() -> None:
    t = wait_run_from_history()
    run = build_replay(t.records, t.intact(), QueryKind.RUN, "R10").runs[0]
    assert [(s.step, s.node, s.source) for s in run.steps] == [
        (1, "fetch", "history"), (2, "summarise", "history"), (3, "format", "history")]
    assert all(s.in_history and not s.in_stream for s in run.steps)
    assert run.gaps == []
    assert run.outcome is not None and run.outcome.output == {"summary": "ticket about <PERSON>"}


def test_failed_run_reports_the_error_and_status() -> None:
    t = failed_run()
    run = build_replay(t.records, t.intact(), QueryKind.RUN, "R20").runs[0]
    [err] = run.errors
    assert err.error == "ValueError" and err.message == "bad customer record for <EMAIL> (<US_SSN>)"
    assert err.offset_ms == 95.0  # request +3, run +5, step +40, error +50
    assert run.outcome is not None and run.outcome.run_status == "error"


def test_history_step_missed_by_the_stream_is_kept_and_reported() -> None:
    t = Trail()
    t.request("q", "/threads/T/runs/stream", thread="T")
    t.add("run", {"request_id": "q", "thread_id": "T", "run_id": "R", "assistant_id": "agent"})
    t.step("q", "T", "R", 1, "a", {"v": "stream-1"})
    t.step("q", "T", "R", 3, "c", {"v": "stream-3"})
    t.response("q", thread="T", run="R")
    t.step("q", "T", "R", 1, "a", {"v": "history-1"}, source="history")
    t.step("q", "T", "R", 2, "b", {"v": "history-2"}, source="history")
    run = build_replay(t.records, t.intact(), QueryKind.RUN, "R").runs[0]
    # Ordered by step number even though step 2 was recorded last.
    assert [(s.step, s.node, s.source, s.data) for s in run.steps] == [
        (1, "a", "stream", {"v": "stream-1"}),
        (2, "b", "history", {"v": "history-2"}),
        (3, "c", "stream", {"v": "stream-3"}),
    ]
    assert [g.code for g in run.gaps] == ["step_missing_from_stream"]
    assert "step 2 (b)" in run.gaps[0].message


def test_missing_response_and_missing_steps_are_gaps() -> None:
    t = Trail()
    t.request("q", "/threads/T/runs/stream", thread="T")
    t.add("run", {"request_id": "q", "thread_id": "T", "run_id": "R", "assistant_id": "agent"})
    t.step("q", "T", "R", 1, "a", {})
    t.step("q", "T", "R", 4, "d", {})
    run = build_replay(t.records, t.intact(), QueryKind.RUN, "R").runs[0]
    codes = {g.code: g.message for g in run.gaps}
    assert "missing_response" in codes and "request q" in codes["missing_response"]
    assert "step(s) 2, 3" in codes["step_number_gap"]
    assert run.outcome is None


def test_record_order_does_not_change_the_replay() -> None:
    t = interrupted_then_approved_resume()
    expected = to_dict(build_replay(t.records, t.intact(), QueryKind.THREAD, "T1"))
    rng = random.Random(7)
    for _ in range(5):
        shuffled = list(t.records)
        rng.shuffle(shuffled)
        assert to_dict(build_replay(shuffled, t.intact(), QueryKind.THREAD, "T1")) == expected


def test_incomplete_chain_marks_records_outside_the_verified_prefix() -> None:
    t = interrupted_then_approved_resume()
    through = t.last_seq()
    through["gw-0"] -= 2  # the last two records of gw-0 (step 4 and the response) are torn
    v = Verification("incomplete", "torn tail", through, ["gw-0: torn record"])
    replay = build_replay(t.records, v, QueryKind.RUN, "R2")
    run = replay.runs[0]
    assert [s.verified for s in run.steps] == [True, False]
    assert len(replay.unverified_refs) == 2
    assert [g.code for g in replay.gaps] == ["unverified_records"]


@pytest.mark.parametrize("kind,ident", [(QueryKind.RUN, "nope"), (QueryKind.THREAD, "nope"), (QueryKind.REQUEST, "nope")])
def test_unknown_ids_raise(kind: QueryKind, ident: str) -> None:
    t = interrupted_then_approved_resume()
    with pytest.raises(UnknownId, match="nope"):
        build_replay(t.records, t.intact(), kind, ident)


def test_views_are_plain_dataclasses() -> None:
    t = failed_run()
    replay = build_replay(t.records, t.intact(), QueryKind.RUN, "R20")
    assert dataclasses.is_dataclass(replay)
    assert to_dict(replay)["schema_version"] == 1


def test_join_stream_duplicates_are_merged_and_denied_requests_listed() -> None:
    t = Trail()
    t.request("c", "/threads/T/runs", thread="T", route="threads.create_run")
    t.add("run", {"request_id": "c", "thread_id": "T", "run_id": "R", "assistant_id": "agent"})
    t.response("c", thread="T", run="R", run_status=None)
    # A client joins the background run's stream; the gateway records the steps it sees.
    t.request("j", "/threads/T/runs/R/stream", thread="T", method="GET", route="threads.join_run_stream",
              action="join_run")
    t.step("j", "T", "R", 1, "a", {"x": 1})
    t.step("j", "T", "R", 2, "b", {"x": 2})
    t.response("j", thread="T", run="R", run_status="success")
    # After the run the gateway collected the history too.
    t.step("c", "T", "R", 1, "a", {"x": 1}, source="history")
    t.step("c", "T", "R", 2, "b", {"x": 2}, source="history")
    t.request("d", "/threads/T/runs", thread="T", decision="deny", rule="no-night-runs", status=403)
    t.response("d", status=403, run_status=None, thread="T")
    replay = build_replay(t.records, t.intact(), QueryKind.THREAD, "T")
    [run] = replay.runs
    assert run.started_by is not None and run.started_by.request_id == "c"
    assert [rv.request_id for rv in run.other_requests] == ["j"]
    assert [(s.step, s.node, s.source, s.in_history) for s in run.steps] == [(1, "a", "stream", True), (2, "b", "stream", True)]
    # The creating response carried no final status; the join's response did.
    assert run.outcome is not None and run.outcome.run_status == "success"
    assert [(rv.request_id, rv.decision, rv.rule) for rv in replay.requests] == [("d", "deny", "no-night-runs")]
    assert run.gaps == [] and replay.gaps == []
    # --request of the join request replays the run it joined.
    assert [r.run_id for r in build_replay(t.records, t.intact(), QueryKind.REQUEST, "j").runs] == ["R"]


def test_stream_positions_are_paired_with_history_supersteps() -> None:
    # A resumed run: the stream numbers its updates 1, 2 by position; the thread history has
    # the real supersteps 4, 5, 6, and the stream missed `finish`.
    t = Trail()
    t.request("q", "/threads/T/runs/stream", thread="T", resume={"value": "ok"})
    t.add("run", {"request_id": "q", "thread_id": "T", "run_id": "R", "assistant_id": "agent"})
    t.step("q", "T", "R", 1, "review", {"approved": "ok"})
    t.step("q", "T", "R", 2, "explode", {"steps": ["explode"]})
    t.response("q", thread="T", run="R")
    for n, node in ((4, "review"), (5, "explode"), (6, "finish")):
        t.step("q", "T", "R", n, node, {"from": "history"}, source="history", after_ms=1)
    run = build_replay(t.records, t.intact(), QueryKind.RUN, "R").runs[0]
    assert [(s.step, s.node, s.source, s.in_stream, s.in_history) for s in run.steps] == [
        (4, "review", "stream", True, True),
        (5, "explode", "stream", True, True),
        (6, "finish", "history", False, True),
    ]
    assert run.steps[0].data == {"approved": "ok"}
    assert [g.code for g in run.gaps] == ["step_missing_from_stream"]


def test_two_pass_selection_gives_the_same_replay_as_the_whole_trail() -> None:
    from dataclasses import replace

    from trail import hostile_run

    from graphwarden.replay.model import select_records

    fixtures = [interrupted_then_approved_resume(), wait_run_from_history(), failed_run(), hostile_run()]
    # One trail with every fixture, each on its own chains (ids do not collide across fixtures).
    records = [replace(r, chain=f"{r.chain}-f{i}") for i, t in enumerate(fixtures) for r in t.records]
    verification = Verification(
        "intact", "ok", {f"{c}-f{i}": s for i, t in enumerate(fixtures) for c, s in t.last_seq().items()}, [])
    queries: list[tuple[QueryKind, str]] = []
    for r in records:
        b = r.body
        if r.kind == "request":
            queries.append((QueryKind.REQUEST, b["request_id"]))
        if r.kind == "run":
            queries.append((QueryKind.RUN, b["run_id"]))
        if isinstance(b.get("thread_id"), str):
            queries.append((QueryKind.THREAD, b["thread_id"]))
    assert len(set(queries)) == 15  # 6 requests, 5 runs, 4 threads
    for kind, ident in sorted(set(queries), key=lambda q: (q[0].value, q[1])):
        selected = select_records(lambda: iter(records), kind, ident)
        assert len(selected) < len(records)
        assert to_dict(build_replay(selected, verification, kind, ident)) == to_dict(
            build_replay(records, verification, kind, ident)), (kind, ident)
    with pytest.raises(UnknownId):
        build_replay(select_records(lambda: iter(records), QueryKind.RUN, "nope"), verification, QueryKind.RUN, "nope")
