"""A deterministic LangGraph graph for graphwarden's tests (no LLM, no network).

State: `messages` (list of strings, appended), `steps` (node names visited), `approved` (set by
resuming an interrupt). Input flags steer it:
- `{"text": "..."}`: greet echoes the text (tests put PII and secrets in it);
- `{"fail": true}`: the `explode` node raises with a message that contains PII;
- `{"pause": true}`: `review` calls interrupt() and waits for `Command(resume=...)`;
- `{"chunks": N}`: `tool` emits N custom stream events (tokens of a fake answer).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    text: str
    fail: bool
    pause: bool
    chunks: int
    messages: Annotated[list[str], operator.add]
    steps: Annotated[list[str], operator.add]
    approved: Any


def greet(state: State) -> dict[str, Any]:
    text = state.get("text", "")
    return {
        "messages": [f"hello, you said: {text}", "contact: jane.doe@example.com"],
        "steps": ["greet"],
    }


def tool(state: State) -> dict[str, Any]:
    writer = get_stream_writer()
    answer = "the quick brown fox jumps over the lazy dog"
    n = int(state.get("chunks", 3))
    words = answer.split()
    for i in range(n):
        writer({"token": words[i % len(words)], "index": i})
    return {"messages": [f"tool emitted {n} chunks"], "steps": ["tool"]}


def review(state: State) -> dict[str, Any]:
    if not state.get("pause"):
        return {"steps": ["review"]}
    decision = interrupt({"question": "approve this action?", "draft": state.get("text", "")})
    return {"approved": decision, "steps": ["review"], "messages": [f"review resumed with {decision!r}"]}


def explode(state: State) -> dict[str, Any]:
    if state.get("fail"):
        raise ValueError("database write failed for customer john.smith@example.org (SSN 123-45-6789)")
    return {"steps": ["explode"]}


def finish(state: State) -> dict[str, Any]:
    return {"messages": ["done"], "steps": ["finish"]}


builder = StateGraph(State)
builder.add_node("greet", greet)
builder.add_node("tool", tool)
builder.add_node("review", review)
builder.add_node("explode", explode)
builder.add_node("finish", finish)
builder.add_edge(START, "greet")
builder.add_edge("greet", "tool")
builder.add_edge("tool", "review")
builder.add_edge("review", "explode")
builder.add_edge("explode", "finish")
builder.add_edge("finish", END)

graph = builder.compile()
