"""Tool formats that write a call as a function-call expression: `gemma4` (`call:name{key:<|"|>text<|"|>}`) and
`lfm2` (Python: `[name(key="text", n=1)]`), as LLaMA-Factory's tool_utils writes and reads them.

One difference in reading: LLaMA-Factory keeps arguments it cannot parse as the raw text of a call; here such a
reply stays text, so a call's arguments are always a JSON object.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from lf_ray.data.tool_formats.base import FunctionCall, ToolFormat, dumps, unwrap_tool

# --- gemma4 ----------------------------------------------------------------------------------------------

_QUOTE = '<|"|>'  # Gemma 4's string delimiter token
_GEMMA4_CALL = re.compile(r"<\|tool_call>call:([^{\s]+)\{(.*?)\}<tool_call\|>", re.DOTALL)
_GEMMA4_STRING = re.compile(r"<\|\"\|>(.*?)<\|\"\|>", re.DOTALL)
_BARE_KEY = re.compile(r"(^|[{\s,])([A-Za-z_][A-Za-z0-9_]*)(\s*:)")


def _quoted(text: Any) -> str:
    return f"{_QUOTE}{text}{_QUOTE}"


def _gemma4_schema(schema: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    parts = []
    if "description" in keys and schema.get("description"):
        parts.append(f"description:{_quoted(schema['description'])}")
    if "type" in keys and schema.get("type"):
        parts.append(f"type:{_quoted(str(schema['type']).upper())}")
    return parts


def _gemma4_parameters(params: dict[str, Any]) -> str:
    parts = []
    if params.get("properties"):
        properties = ",".join(
            f"{name}:{{{','.join(_gemma4_schema(schema, ('description', 'type')))}}}"
            for name, schema in params["properties"].items()
        )
        parts.append(f"properties:{{{properties}}}")
    if params.get("required"):
        parts.append("required:[{}]".format(",".join(_quoted(item) for item in params["required"])))
    parts += _gemma4_schema(params, ("type",))
    return ",".join(parts)


def gemma4_describe(tools: list[dict[str, Any]]) -> str:
    declarations = []
    for tool in tools:
        function = unwrap_tool(tool)
        declaration = f"declaration:{function['name']}{{description:{_quoted(function.get('description', ''))}"
        if function.get("parameters"):
            declaration += f",parameters:{{{_gemma4_parameters(function['parameters'])}}}"
        response = function.get("response")
        if response:
            parts = _gemma4_schema(response, ("description",))
            if str(response.get("type", "")).upper() == "OBJECT":
                parts.append(f"type:{_quoted('OBJECT')}")
            declaration += f",response:{{{','.join(parts)}}}"
        declarations.append(declaration + "}")
    return "\n".join(declarations)


def _gemma4_value(value: Any) -> str:
    """Strings in `<|"|>` quotes, dicts with sorted bare keys, the rest as JSON-like literals."""
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{_gemma4_value(value[key])}" for key in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_gemma4_value(item) for item in value) + "]"
    return "null" if value is None else str(value)


def gemma4_format_calls(calls: list[FunctionCall]) -> str:
    texts = []
    for name, arguments in calls:
        args = json.loads(arguments)
        if isinstance(args, dict):
            body = _gemma4_value(args)[1:-1]
        else:  # arguments given as a string are written as they are, anything else as a value
            body = args if isinstance(args, str) else _gemma4_value(args)
        texts.append(f"<|tool_call>call:{name}{{{body}}}<tool_call|>")
    return "".join(texts)


def _gemma4_arguments(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text:
        return {}
    normalized = _GEMMA4_STRING.sub(lambda m: dumps(m.group(1)), "{" + text + "}")
    normalized = _BARE_KEY.sub(r'\1"\2"\3', normalized)
    for candidate in (normalized, text):
        try:
            parsed = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        return parsed if isinstance(parsed, dict) else None
    return None


def gemma4_extract(content: str) -> str | list[FunctionCall]:
    calls = []
    for name, body in _GEMMA4_CALL.findall(content):
        args = _gemma4_arguments(body)
        if args is None:
            return content
        calls.append(FunctionCall(name.strip(), dumps(args)))
    return calls or content


# --- lfm2 (LFM 2 / 2.5): <|tool_call_start|>[name(key="value")]<|tool_call_end|> ------------------------------

_LFM2_START, _LFM2_END = "<|tool_call_start|>", "<|tool_call_end|>"
_JSON_NAMES = {"true": True, "false": False, "null": None}


def lfm2_describe(tools: list[dict[str, Any]]) -> str:
    return f"List of tools: <|tool_list_start|>{dumps([unwrap_tool(tool) for tool in tools])}<|tool_list_end|>"


def lfm2_format_calls(calls: list[FunctionCall]) -> str:
    texts = []
    for name, arguments in calls:
        kwargs = [
            f'{key}="{value}"' if isinstance(value, str) else f"{key}={dumps(value)}"
            for key, value in json.loads(arguments).items()
        ]
        texts.append(f"{name}({', '.join(kwargs)})")
    return f"{_LFM2_START}[{', '.join(texts)}]{_LFM2_END}"


def _lfm2_value(node: ast.expr) -> Any:
    if isinstance(node, ast.Name):  # JSON spellings; any other bare name is not a value
        if node.id not in _JSON_NAMES:
            raise ValueError(f"unknown name {node.id}")
        return _JSON_NAMES[node.id]
    return ast.literal_eval(node)


def _lfm2_call(node: ast.expr) -> FunctionCall | None:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    args = {}
    for keyword in node.keywords:
        if keyword.arg is None:  # **kwargs
            return None
        try:
            args[keyword.arg] = _lfm2_value(keyword.value)
        except (ValueError, TypeError, SyntaxError):
            return None
    return FunctionCall(node.func.id, dumps(args))


def lfm2_extract(content: str) -> str | list[FunctionCall]:
    start = content.find(_LFM2_START)
    end = content.find(_LFM2_END, start)
    if start == -1 or end == -1:
        return content
    try:
        tree = ast.parse(content[start + len(_LFM2_START) : end].strip(), mode="eval")
    except SyntaxError:
        return content
    nodes = tree.body.elts if isinstance(tree.body, ast.List) else [tree.body]
    calls = [_lfm2_call(node) for node in nodes]
    if not calls or None in calls:
        return content
    return calls  # type: ignore[return-value]


FORMATS = {
    "gemma4": ToolFormat("gemma4", gemma4_describe, gemma4_format_calls, gemma4_extract),
    "lfm2": ToolFormat("lfm2", lfm2_describe, lfm2_format_calls, lfm2_extract),
}
