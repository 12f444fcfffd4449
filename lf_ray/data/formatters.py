"""Slots: the pieces a template is made of, and the formatters that fill them.

A slot is either text (which may hold `{{content}}` / `{{idx}}` placeholders) or a `SpecialToken`
that becomes one id: the tokenizer's bos or eos, or a named token.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from lf_ray.data.tool_formats import FunctionCall, ToolFormat, get_tool_format
from lf_ray.errors import TemplateError

_PLACEHOLDER = re.compile(r"\{\{[a-zA-Z_][a-zA-Z0-9_]*\}\}")


@dataclass(frozen=True)
class SpecialToken:
    kind: Literal["bos", "eos", "token"]
    token: str | None = None  # only for kind == "token"


Slot = str | SpecialToken
BOS = SpecialToken("bos")
EOS = SpecialToken("eos")


def has_placeholder(slots: list[Slot]) -> bool:
    return any(isinstance(slot, str) and _PLACEHOLDER.search(slot) for slot in slots)


@dataclass(frozen=True)
class StringFormatter:
    """Fills `{{name}}` placeholders (each once) in the text slots."""

    slots: tuple[Slot, ...]

    def apply(self, **values: str | None) -> list[Slot]:
        elements: list[Slot] = []
        for slot in self.slots:
            if isinstance(slot, str):
                for name, value in values.items():
                    slot = slot.replace("{{" + name + "}}", value or "", 1)
            elements.append(slot)
        return elements


@dataclass(frozen=True)
class FunctionFormatter(StringFormatter):
    """Turns a function message (JSON call or list of calls) into the tool format's assistant text."""

    tool_format: str = "default"

    def apply(self, **values: str | None) -> list[Slot]:  # type: ignore[override]
        content = values.pop("content") or ""
        thought_words = values.pop("thought_words", None)
        thought = None
        if thought_words:
            pattern = re.compile(f"{re.escape(thought_words[0])}(.*?){re.escape(thought_words[1])}", re.DOTALL)
            thought = pattern.search(content)
            if thought:
                content = content.replace(thought.group(0), "")
        calls_text = get_tool_format(self.tool_format).format_calls(parse_function_calls(content))
        if thought:
            calls_text = thought.group(0) + calls_text
        return super().apply(content=calls_text)


@dataclass(frozen=True)
class ToolFormatter:
    """Renders the JSON list of tools into system text, and parses calls out of a reply.

    With `slots` (a template's `tools:` row, e.g. phi4_mini's `<|tool|>{{content}}<|/tool|>`) the tools JSON goes
    into them as given rather than being described by the tool format, as LLaMA-Factory's StringFormatter does.
    """

    tool_format: str = "default"
    slots: tuple[Slot, ...] = field(default=())

    @property
    def format(self) -> ToolFormat:
        return get_tool_format(self.tool_format)

    def apply(self, content: str) -> str:
        try:
            tools = json.loads(content)
        except json.JSONDecodeError as err:
            raise TemplateError(
                f"tools must be a JSON list of function descriptions, got {content[:200]!r} ({err.msg}); "
                "fix the dataset's `tools` column"
            ) from None
        if self.slots:
            return "".join(slot for slot in StringFormatter(self.slots).apply(content=content) if isinstance(slot, str))
        return self.format.describe(tools) if tools else ""

    def extract(self, content: str) -> str | list[FunctionCall]:
        return self.format.extract_calls(content)


def parse_function_calls(content: str) -> list[FunctionCall]:
    """A function message holds `{"name": ..., "arguments": {...}}` or a list of them."""
    try:
        calls = json.loads(content)
        calls = calls if isinstance(calls, list) else [calls]
        return [FunctionCall(call["name"], json.dumps(call["arguments"], ensure_ascii=False)) for call in calls]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise TemplateError(
            f'a function message must be JSON like {{"name": ..., "arguments": {{...}}}}, got {content[:200]!r}; '
            "fix the dataset row's function_call content"
        ) from None
