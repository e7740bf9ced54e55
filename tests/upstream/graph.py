"""A deterministic LangGraph graph for graphwarden's tests (no LLM, no network).

State: `messages` (list of strings, appended), `steps` (node names visited), `approved` (set by
resuming an interrupt). Input flags steer it:
- `{"text": "..."}`: greet echoes the text (tests put PII and secrets in it);
- `{"fail": true}`: the `explode` node raises with a message that contains PII;
- `{"pause": true}`: `review` calls interrupt() and waits for `Command(resume=...)`;
- `{"chunks": N}`: `tool` emits N custom stream events (tokens of a fake answer);
- `{"talk": "..."}`: greet asks a fake chat model, which streams that text back in 4-character
  token deltas (so `messages-tuple` streams carry a value split across events).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class EchoChatModel(BaseChatModel):
    """Answers with the `talk` text, streamed in 4-character deltas. Deterministic, offline."""

    answer: str = ""

    @property
    def _llm_type(self) -> str:
        return "graphwarden-echo"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.answer))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Any:
        for i in range(0, len(self.answer), 4):
            piece = self.answer[i:i + 4]
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk


class State(TypedDict, total=False):
    talk: str
    text: str
    fail: bool
    pause: bool
    chunks: int
    messages: Annotated[list[str], operator.add]
    steps: Annotated[list[str], operator.add]
    approved: Any


def greet(state: State) -> dict[str, Any]:
    text = state.get("text", "")
    messages = [f"hello, you said: {text}", "contact: jane.doe@example.com"]
    if state.get("talk"):
        reply = EchoChatModel(answer=state["talk"]).invoke([("user", text or "talk to me")])
        messages.append(str(reply.content))
    return {"messages": messages, "steps": ["greet"]}


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
