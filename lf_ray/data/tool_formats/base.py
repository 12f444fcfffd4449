"""What every tool format is made of: a parsed call, the three functions, and the small JSON helpers they share."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple


class FunctionCall(NamedTuple):
    name: str
    arguments: str  # JSON text of the arguments object


@dataclass(frozen=True)
class ToolFormat:
    name: str
    describe: Callable[[list[dict[str, Any]]], str]
    format_calls: Callable[[list[FunctionCall]], str]
    extract_calls: Callable[[str], str | list[FunctionCall]]


def unwrap_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The function description itself, whether or not it comes as `{"type": "function", "function": ...}`."""
    return tool.get("function", tool) if tool.get("type") == "function" else tool


def wrap_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return tool if tool.get("type") == "function" else {"type": "function", "function": tool}


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, **kwargs)


def value_text(value: Any) -> str:
    """An argument value as the tagged formats write it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else dumps(value)


def parse_value(text: str, fallback: str) -> Any:
    """A tagged argument value read back: JSON when it parses, else `fallback` (the text, stripped or not)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return fallback
