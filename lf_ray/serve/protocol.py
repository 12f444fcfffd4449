"""The OpenAI HTTP protocol as pydantic models: what `/v1/chat/completions`, `/v1/completions` and `/v1/models`
accept and return. Pure: no Ray, no torch.

Requests keep OpenAI's field names and ranges, plus LLaMA-Factory's and vLLM's extensions (`do_sample`, `top_k`,
`repetition_penalty`). Unknown fields are ignored, as OpenAI-compatible servers do; fields lf-ray cannot honour
(logprobs, JSON response formats, images) are refused with a 400 by `serve/prompts.py`, not silently dropped.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGES = 1024
"""Messages in one chat request; more answers 422 (a conversation that long exceeds any context anyway)."""
MAX_TOOLS = 128
"""Tools offered in one request (OpenAI's own limit)."""

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionDefinition(_Request):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Request):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionCallOut(BaseModel):
    name: str
    arguments: str
    """JSON text of the arguments object (OpenAI sends and returns a string)."""


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class ContentPart(_Request):
    type: str
    text: str | None = None


class ChatMessage(_Request):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ResponseFormat(_Request):
    type: Literal["text", "json_object", "json_schema"] = "text"


class StreamOptions(_Request):
    include_usage: bool = False


class _SamplingFields(_Request):
    """Decoding fields shared by chat and text completions; None means "LLaMA-Factory's generating default"."""

    model: str
    do_sample: bool | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    n: int = Field(default=1, ge=1, le=16)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    tools: list[Tool] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class CompletionRequest(_SamplingFields):
    prompt: str | list[str]
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None
    best_of: int | None = None


# --- responses -----------------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls"] | None
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "lf-ray"
    root: str | None = None
    parent: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ScoreEvaluationRequest(_Request):
    """LLaMA-Factory's `/v1/score/evaluation` (a reward model served by its API): whole texts to score."""

    model: str
    messages: list[str] = Field(min_length=1)
    max_length: int | None = Field(default=None, ge=1)


class ScoreEvaluationResponse(BaseModel):
    id: str
    object: Literal["score.evaluation"] = "score.evaluation"
    model: str
    scores: list[float]
