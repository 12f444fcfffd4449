"""The Chat tab's engine: the model of the board's form, loaded in this process with the same `ChatService`
as `lf-ray chat` and `lf-ray serve`, answering an OpenAI-style request as a stream of text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lf_ray.webui.board_args import model_args

if TYPE_CHECKING:
    from lf_ray.serve.service import ChatService


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    top_p: float = 0.7
    temperature: float = 0.95


def parse_tools(text: str | None) -> list[dict[str, Any]] | None:
    """The tools box: a JSON list of OpenAI function tools (or of bare function specs, wrapped here)."""
    if not text or not text.strip():
        return None
    tools = json.loads(text)
    if not isinstance(tools, list):
        raise ValueError("tools must be a JSON list of functions")
    return [tool if "function" in tool else {"type": "function", "function": tool} for tool in tools]


class BoardChat:
    def __init__(self) -> None:
        self.service: ChatService | None = None
        self.model_name = ""

    @property
    def loaded(self) -> bool:
        return self.service is not None

    def load(self, state: Mapping[str, Any]) -> str:
        """Load the form's model (adapters merged); returns the model's name for the status box."""
        from lf_ray.config import prepare_config
        from lf_ray.serve.service import ChatService

        cfg = prepare_config(None, base=model_args(state))
        self.service = ChatService.from_config(cfg)
        adapters = state.get("top.adapter_path") or []
        self.model_name = cfg.model.model_name_or_path + (f" + {', '.join(adapters)}" if adapters else "")
        return self.model_name

    def unload(self) -> None:
        self.service = None
        self.model_name = ""

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        settings: GenerationSettings | None = None,
    ) -> Iterator[str]:
        """The answer to `messages` so far, growing as tokens arrive (tool calls shown as their JSON)."""
        from lf_ray.serve.protocol import ChatCompletionRequest

        if self.service is None:
            raise RuntimeError("no model is loaded")
        settings = settings or GenerationSettings()
        conversation = ([{"role": "system", "content": system}] if system else []) + messages
        request = ChatCompletionRequest(
            model=self.service.model_id,
            messages=conversation,
            tools=tools,
            stream=True,
            max_tokens=settings.max_new_tokens,
            top_p=settings.top_p,
            temperature=settings.temperature,
        )
        text, calls = "", []
        for chunk in self.service.stream(self.service.prepare_chat(request)):
            for choice in chunk["choices"]:
                delta = choice["delta"]
                text += delta.get("content") or ""
                calls += delta.get("tool_calls") or []
            yield text + _calls_text(calls)


def _calls_text(calls: list[dict[str, Any]]) -> str:
    """Streamed tool-call deltas joined into `{"name": ..., "arguments": ...}` lines."""
    merged: dict[int, dict[str, str]] = {}
    for call in calls:
        entry = merged.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
        function = call.get("function") or {}
        entry["name"] += function.get("name") or ""
        entry["arguments"] += function.get("arguments") or ""
    return "".join(f"\n{json.dumps(entry, ensure_ascii=False)}" for entry in merged.values())
