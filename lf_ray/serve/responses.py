"""OpenAI response bodies and stream chunks, built step by step from the engine's per-row text deltas.

`ResponseBuilder` is fed each decoding step of one request (its `n` rows) and returns the chunks to send;
`body()` gives the non-streaming response from the same state, so both modes carry the same text, tool calls,
finish reasons and usage. Pure: no Ray, no torch.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from lf_ray.data.tool_formats import FunctionCall
from lf_ray.serve.engine import GenerationRow, RowDelta
from lf_ray.serve.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionResponse,
    FunctionCallOut,
    ToolCall,
    Usage,
)
from lf_ray.serve.tool_stream import ChoiceText, Extractor


@dataclass
class PreparedRequest:
    """A validated request, ready for the engine: one row per choice (`n`), prompt already tokenized."""

    kind: Literal["chat", "completion"]
    model: str
    rows: list[GenerationRow]
    prompt_tokens: int
    stream: bool = False
    include_usage: bool = False
    parse_tools: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))


class ResponseBuilder:
    """Accumulates one request's choices; `step` returns stream chunks, `body` the whole response."""

    def __init__(self, prepared: PreparedRequest, extract: Extractor | None = None, openers: tuple[str, ...] = ()):
        self.prepared = prepared
        use_tools = prepared.parse_tools and extract is not None
        self.choices = [ChoiceText(extract if use_tools else None, openers if use_tools else ()) for _ in prepared.rows]
        self.finish_reasons: list[str | None] = [None] * len(prepared.rows)
        self.tool_calls: list[list[ToolCall]] = [[] for _ in prepared.rows]
        self.completion_tokens = [0] * len(prepared.rows)
        prefix = "chatcmpl" if prepared.kind == "chat" else "cmpl"
        self.id = f"{prefix}-{prepared.request_id}"

    @property
    def done(self) -> bool:
        return all(reason is not None for reason in self.finish_reasons)

    # --- streaming -------------------------------------------------------------------------------------------

    def start(self) -> list[dict[str, Any]]:
        """The opening chunk of a chat stream announces the assistant role (text completions have none)."""
        if self.prepared.kind != "chat":
            return []
        return [self._chunk(i, {"role": "assistant", "content": ""}) for i in range(len(self.choices))]

    def step(self, deltas: list[RowDelta | None]) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        for index, delta in enumerate(deltas):
            if delta is None:
                continue
            self.completion_tokens[index] = delta.completion_tokens
            text = self.choices[index].feed(delta.text)
            if text:
                chunks.append(self._text_chunk(index, text))
            if delta.finish_reason is not None:
                chunks.extend(self._finish(index, delta.finish_reason))
        if self.done and self.prepared.include_usage:
            chunks.append({**self._envelope(), "choices": [], "usage": self.usage().model_dump()})
        return chunks

    def _finish(self, index: int, reason: str) -> list[dict[str, Any]]:
        rest, calls = self.choices[index].finish()
        chunks = [self._text_chunk(index, rest)] if rest else []
        if calls:
            reason = "tool_calls"
            self.tool_calls[index] = [_tool_call(call) for call in calls]
            for position, call in enumerate(self.tool_calls[index]):
                head = {"index": position, "id": call.id, "type": "function"}
                name = {**head, "function": {"name": call.function.name, "arguments": ""}}
                chunks.append(self._chunk(index, {"tool_calls": [name]}))
                arguments = {"index": position, "function": {"arguments": call.function.arguments}}
                chunks.append(self._chunk(index, {"tool_calls": [arguments]}))
        self.finish_reasons[index] = reason
        chunks.append(
            self._chunk(index, {}, reason) if self.prepared.kind == "chat" else self._text_chunk(index, "", reason)
        )
        return chunks

    def _envelope(self) -> dict[str, Any]:
        obj = "chat.completion.chunk" if self.prepared.kind == "chat" else "text_completion"
        return {"id": self.id, "object": obj, "created": self.prepared.created, "model": self.prepared.model}

    def _chunk(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self._envelope(), "choices": [choice]}

    def _text_chunk(self, index: int, text: str, finish_reason: str | None = None) -> dict[str, Any]:
        if self.prepared.kind == "chat":
            return self._chunk(index, {"content": text}, finish_reason)
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._envelope(), "choices": [choice]}

    # --- whole response --------------------------------------------------------------------------------------

    def usage(self) -> Usage:
        completion = sum(self.completion_tokens)
        prompt = self.prepared.prompt_tokens
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def body(self) -> dict[str, Any]:
        """The non-streaming response (call after the last step)."""
        prepared = self.prepared
        common = {"id": self.id, "created": prepared.created, "model": prepared.model, "usage": self.usage()}
        if prepared.kind == "completion":
            choices = [
                CompletionChoice(index=i, text=choice.text, finish_reason=self.finish_reasons[i])
                for i, choice in enumerate(self.choices)
            ]
            return CompletionResponse(choices=choices, **common).model_dump()
        chat_choices = []
        for i, choice in enumerate(self.choices):
            calls = self.tool_calls[i] or None
            message = AssistantMessage(content=None if calls else choice.text, tool_calls=calls)
            chat_choices.append(ChatChoice(index=i, message=message, finish_reason=self.finish_reasons[i]))
        return ChatCompletionResponse(choices=chat_choices, **common).model_dump(exclude_none=False)


def _tool_call(call: FunctionCall) -> ToolCall:
    return ToolCall(
        id=f"call_{uuid.uuid4().hex[:24]}", function=FunctionCallOut(name=call.name, arguments=call.arguments)
    )
