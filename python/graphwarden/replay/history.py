"""Graph steps as a LangGraph thread history shows them (`GET /threads/{id}/history`).

Used to check a replay against the server (replay must list exactly these steps) and usable
by the request path to record `step` records with `source = "history"` for runs without a
stream. How the history encodes steps (observed on langgraph-api's in-memory runtime): the
checkpoint of superstep N lists, in `tasks`, the nodes scheduled for superstep N+1 with their
`result` (the node's update) once they have run; the node's step is complete when the
checkpoint of superstep N+1 exists, and that checkpoint's `metadata.run_id` is the run that
executed it. Hence a node interrupted in run R1 and resumed by run R2 belongs to R2, and a node
that raised (no next checkpoint) is not a step. Stream `updates` events carry no step number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HistoryStep:
    run_id: str | None
    step: int  # LangGraph superstep (metadata.step of the checkpoint the node produced)
    node: str
    data: Any  # the node's update (task result), unmasked as served
    ts: str | None  # created_at of the checkpoint the node produced


def steps_from_history(history: Sequence[Mapping[str, Any]]) -> list[HistoryStep]:
    """Completed root-graph node executions, ordered by superstep then node name.

    `history` is the list the server returns (newest first) or any order of it; subgraph
    checkpoints (non-empty `checkpoint_ns`) are ignored.
    """
    by_step: dict[int, Mapping[str, Any]] = {}
    for cp in history:
        meta = cp.get("metadata") or {}
        checkpoint = cp.get("checkpoint") or {}
        if checkpoint.get("checkpoint_ns"):
            continue
        step = meta.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = cp
    steps: list[HistoryStep] = []
    for n in sorted(by_step):
        after = by_step.get(n + 1)
        if after is None:
            continue  # nothing completed after this checkpoint (end, pending interrupt, error)
        run_id = (after.get("metadata") or {}).get("run_id")
        for task in by_step[n].get("tasks") or []:
            name = task.get("name")
            if not isinstance(name, str) or name.startswith("__"):
                continue  # __start__ carries the input, not a node's work
            if task.get("error"):
                continue
            steps.append(
                HistoryStep(
                    run_id=run_id if isinstance(run_id, str) else None,
                    step=n + 1,
                    node=name,
                    data=task.get("result"),
                    ts=after.get("created_at") if isinstance(after.get("created_at"), str) else None,
                )
            )
    steps.sort(key=lambda s: (s.step, s.node))
    return steps
