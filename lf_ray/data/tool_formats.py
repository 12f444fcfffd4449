"""How each model family writes tool descriptions and tool calls, and how calls are parsed back.

A tool format has three functions: `describe` (tools → system text), `format_calls` (calls → assistant
text) and `extract_calls` (assistant text → calls, or the text itself when it holds no call). They
reproduce LLaMA-Factory's `default`, `qwen`, `llama3` and `mistral` tool formats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from lf_ray.errors import TemplateError


class FunctionCall(NamedTuple):
    name: str
    arguments: str  # JSON text of the arguments object


@dataclass(frozen=True)
class ToolFormat:
    name: str
    describe: Callable[[list[dict[str, Any]]], str]
    format_calls: Callable[[list[FunctionCall]], str]
    extract_calls: Callable[[str], str | list[FunctionCall]]


def _unwrap(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function", {}) if tool.get("type") == "function" else tool


def _wrap(tool: dict[str, Any]) -> dict[str, Any]:
    return tool if tool.get("type") == "function" else {"type": "function", "function": tool}


def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, **kwargs)


# --- default (ReAct-style "Action: / Action Input:") ---------------------------------------------

_DEFAULT_PROMPT = (
    "You have access to the following tools:\n{tool_text}"
    "Use the following format if using a tool:\n"
    "```\n"
    "Action: tool name (one of [{tool_names}])\n"
    "Action Input: the input to the tool, in a JSON format representing the kwargs "
    """(e.g. ```{{"input": "hello world", "num_beams": 5}}```)\n"""
    "```\n"
)


def _describe_param(name: str, param: dict[str, Any], required: list[str]) -> str:
    required_text = ", required" if name in required else ""
    enum_text = ", should be one of [{}]".format(", ".join(param["enum"])) if param.get("enum") else ""
    items_text = ", where each item should be {}".format(param["items"].get("type", "")) if param.get("items") else ""
    return "  - {name} ({type}{required}): {desc}{enum}{items}\n".format(
        name=name,
        type=param.get("type", ""),
        required=required_text,
        desc=param.get("description", ""),
        enum=enum_text,
        items=items_text,
    )


def _default_describe(tools: list[dict[str, Any]]) -> str:
    tool_text, tool_names = "", []
    for tool in map(_unwrap, tools):
        parameters = tool.get("parameters", {})
        required = parameters.get("required", [])
        args = "".join(
            _describe_param(name, param, required) for name, param in parameters.get("properties", {}).items()
        )
        tool_text += "> Tool Name: {}\nTool Description: {}\nTool Args:\n{}\n".format(
            tool["name"], tool.get("description", ""), args
        )
        tool_names.append(tool["name"])
    return _DEFAULT_PROMPT.format(tool_text=tool_text, tool_names=", ".join(tool_names))


def _default_format_calls(calls: list[FunctionCall]) -> str:
    return "\n".join(f"Action: {name}\nAction Input: {arguments}" for name, arguments in calls)


_DEFAULT_CALL = re.compile(r"Action:\s*([a-zA-Z0-9_]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)", re.DOTALL)


def _default_extract(content: str) -> str | list[FunctionCall]:
    matches = _DEFAULT_CALL.findall(content)
    if not matches:
        return content
    calls = []
    for name, raw_input in matches:
        try:
            arguments = json.loads(raw_input.strip().strip('"').strip("`"))
        except json.JSONDecodeError:
            return content
        calls.append(FunctionCall(name.strip(), _dumps(arguments)))
    return calls


# --- qwen (<tool_call> JSON </tool_call>) ------------------------------------------------------------

_QWEN_PROMPT = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tool_text}"
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    """<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, """
    """"arguments": <args-json-object>}}\n</tool_call>"""
)
_QWEN_CALL = re.compile(r"<tool_call>(.+?)</tool_call>(?=\s*<tool_call>|\s*$)", re.DOTALL)


def _qwen_describe(tools: list[dict[str, Any]]) -> str:
    return _QWEN_PROMPT.format(tool_text="".join("\n" + _dumps(_wrap(tool)) for tool in tools))


def _qwen_format_calls(calls: list[FunctionCall]) -> str:
    texts = [_dumps({"name": name, "arguments": json.loads(arguments)}) for name, arguments in calls]
    return "\n".join(f"<tool_call>\n{text}\n</tool_call>" for text in texts)


def _qwen_extract(content: str) -> str | list[FunctionCall]:
    matches = _QWEN_CALL.findall(content)
    if not matches:
        return content
    calls = []
    for raw in matches:
        try:
            call = json.loads(raw.strip())
        except json.JSONDecodeError:
            return content
        if not isinstance(call, dict) or "name" not in call or "arguments" not in call:
            return content
        calls.append(FunctionCall(call["name"], _dumps(call["arguments"])))
    return calls


# --- llama3 (JSON with "parameters") and mistral (JSON list with "arguments") ----------------------

_LLAMA3_PROMPT = (
    "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n"
    "You have access to the following functions. To call a function, please respond with JSON for a function call. "
    """Respond in the format {{"name": function name, "parameters": dictionary of argument name and its value}}. """
    "Do not use variables.\n\n{tool_text}"
)


def _llama3_describe(tools: list[dict[str, Any]]) -> str:
    tool_text = "".join(_dumps(_wrap(tool), indent=4) + "\n\n" for tool in tools)
    return _LLAMA3_PROMPT.format(date=datetime.now().strftime("%d %b %Y"), tool_text=tool_text)


def _llama3_format_calls(calls: list[FunctionCall]) -> str:
    objects = [{"name": name, "parameters": json.loads(arguments)} for name, arguments in calls]
    return _dumps(objects[0] if len(objects) == 1 else objects)


def _json_extract(content: str, arguments_key: str) -> str | list[FunctionCall]:
    try:
        parsed = json.loads(content.strip())
    except json.JSONDecodeError:
        return content
    objects = parsed if isinstance(parsed, list) else [parsed]
    try:
        return [FunctionCall(obj["name"], _dumps(obj[arguments_key])) for obj in objects]
    except (KeyError, TypeError):
        return content


def _mistral_describe(tools: list[dict[str, Any]]) -> str:
    return "[AVAILABLE_TOOLS] " + _dumps([_wrap(tool) for tool in tools]) + "[/AVAILABLE_TOOLS]"


def _mistral_format_calls(calls: list[FunctionCall]) -> str:
    return _dumps([{"name": name, "arguments": json.loads(arguments)} for name, arguments in calls])


TOOL_FORMATS: dict[str, ToolFormat] = {
    "default": ToolFormat("default", _default_describe, _default_format_calls, _default_extract),
    "qwen": ToolFormat("qwen", _qwen_describe, _qwen_format_calls, _qwen_extract),
    "llama3": ToolFormat(
        "llama3", _llama3_describe, _llama3_format_calls, lambda text: _json_extract(text, "parameters")
    ),
    "mistral": ToolFormat(
        "mistral", _mistral_describe, _mistral_format_calls, lambda text: _json_extract(text, "arguments")
    ),
}


def get_tool_format(name: str) -> ToolFormat:
    if name not in TOOL_FORMATS:
        raise TemplateError(
            f"unknown tool_format `{name}`; choose one of: {', '.join(sorted(TOOL_FORMATS))} "
            "(set `tool_format:` in the config or leave it unset to use the template's own)"
        )
    return TOOL_FORMATS[name]
