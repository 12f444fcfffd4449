"""Tool formats whose calls are JSON: `default` (ReAct "Action Input:"), `qwen` (and `ling`), `llama3`, `mistral`,
`glm4` (name line + JSON) and `minimax1` (JSON lines in `<tool_calls>`), as LLaMA-Factory's tool_utils writes them."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from lf_ray.data.tool_formats.base import FunctionCall, ToolFormat, dumps, unwrap_tool, wrap_tool
from lf_ray.errors import TemplateError

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


def default_describe(tools: list[dict[str, Any]]) -> str:
    tool_text, tool_names = "", []
    for tool in map(unwrap_tool, tools):
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


def default_format_calls(calls: list[FunctionCall]) -> str:
    return "\n".join(f"Action: {name}\nAction Input: {arguments}" for name, arguments in calls)


_DEFAULT_CALL = re.compile(r"Action:\s*([a-zA-Z0-9_]+)\s*Action Input:\s*(.+?)(?=\s*Action:|\s*$)", re.DOTALL)


def default_extract(content: str) -> str | list[FunctionCall]:
    matches = _DEFAULT_CALL.findall(content)
    if not matches:
        return content
    calls = []
    for name, raw_input in matches:
        try:
            arguments = json.loads(raw_input.strip().strip('"').strip("`"))
        except json.JSONDecodeError:
            return content
        calls.append(FunctionCall(name.strip(), dumps(arguments)))
    return calls


# --- qwen and ling (<tool_call> JSON </tool_call>) ---------------------------------------------------

TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{tool_text}\n</tools>\n\n"
)
_QWEN_PROMPT = (
    "\n\n" + TOOLS_HEADER + "For each function call, return a json object with function name and arguments within "
    """<tool_call></tool_call> XML tags:\n<tool_call>\n{{"name": <function-name>, """
    """"arguments": <args-json-object>}}\n</tool_call>"""
)
_LING_PROMPT = _QWEN_PROMPT[2:] + "\ndetailed thinking off"  # Ling v2: no leading blank line, thinking switched off
_QWEN_CALL = re.compile(r"<tool_call>(.+?)</tool_call>(?=\s*<tool_call>|\s*$)", re.DOTALL)


def wrapped_tools_text(tools: list[dict[str, Any]]) -> str:
    """One `{"type": "function", ...}` JSON line per tool, each after a newline (the `<tools>` block's body)."""
    return "".join("\n" + dumps(wrap_tool(tool)) for tool in tools)


def qwen_describe(tools: list[dict[str, Any]]) -> str:
    return _QWEN_PROMPT.format(tool_text=wrapped_tools_text(tools))


def ling_describe(tools: list[dict[str, Any]]) -> str:
    return _LING_PROMPT.format(tool_text=wrapped_tools_text(tools))


def qwen_format_calls(calls: list[FunctionCall]) -> str:
    texts = [dumps({"name": name, "arguments": json.loads(arguments)}) for name, arguments in calls]
    return "\n".join(f"<tool_call>\n{text}\n</tool_call>" for text in texts)


def qwen_extract(content: str) -> str | list[FunctionCall]:
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
        calls.append(FunctionCall(call["name"], dumps(call["arguments"])))
    return calls


# --- llama3 (JSON with "parameters") and mistral (JSON list with "arguments") ----------------------

_LLAMA3_PROMPT = (
    "Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n"
    "You have access to the following functions. To call a function, please respond with JSON for a function call. "
    """Respond in the format {{"name": function name, "parameters": dictionary of argument name and its value}}. """
    "Do not use variables.\n\n{tool_text}"
)


def llama3_describe(tools: list[dict[str, Any]]) -> str:
    tool_text = "".join(dumps(wrap_tool(tool), indent=4) + "\n\n" for tool in tools)
    return _LLAMA3_PROMPT.format(date=datetime.now().strftime("%d %b %Y"), tool_text=tool_text)


def llama3_format_calls(calls: list[FunctionCall]) -> str:
    objects = [{"name": name, "parameters": json.loads(arguments)} for name, arguments in calls]
    return dumps(objects[0] if len(objects) == 1 else objects)


def json_extract(content: str, arguments_key: str) -> str | list[FunctionCall]:
    try:
        parsed = json.loads(content.strip())
    except json.JSONDecodeError:
        return content
    objects = parsed if isinstance(parsed, list) else [parsed]
    try:
        return [FunctionCall(obj["name"], dumps(obj[arguments_key])) for obj in objects]
    except (KeyError, TypeError):
        return content


def mistral_describe(tools: list[dict[str, Any]]) -> str:
    return "[AVAILABLE_TOOLS] " + dumps([wrap_tool(tool) for tool in tools]) + "[/AVAILABLE_TOOLS]"


def mistral_format_calls(calls: list[FunctionCall]) -> str:
    return dumps([{"name": name, "arguments": json.loads(arguments)} for name, arguments in calls])


# --- glm4 (the function name on one line, its JSON arguments below) -------------------------------

_GLM4_PROMPT = (
    "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
    "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具{tool_text}"
)


def glm4_describe(tools: list[dict[str, Any]]) -> str:
    tool_text = "".join(
        "\n\n## {name}\n\n{body}\n在调用上述函数时，请使用 Json 格式表示调用的参数。".format(
            name=tool["name"], body=dumps(tool, indent=4)
        )
        for tool in map(unwrap_tool, tools)
    )
    return _GLM4_PROMPT.format(tool_text=tool_text)


def glm4_format_calls(calls: list[FunctionCall]) -> str:
    if len(calls) > 1:
        raise TemplateError(
            f"the glm4 tool format writes one call per message, got {len(calls)} parallel calls "
            f"({', '.join(call.name for call in calls)}); split them into separate function turns or use another "
            "`tool_format` (e.g. glm4_moe)"
        )
    return f"{calls[0].name}\n{calls[0].arguments}"


def glm4_extract(content: str) -> str | list[FunctionCall]:
    """A name line and a JSON object below it. Unlike LLaMA-Factory, which takes any JSON below the first line, the
    arguments must be an object: "Result:\\n42" stays text."""
    if "\n" not in content:
        return content
    name, raw_arguments = content.split("\n", maxsplit=1)
    try:
        arguments = json.loads(raw_arguments.strip())
    except json.JSONDecodeError:
        return content
    if not isinstance(arguments, dict) or not name.strip():
        return content
    return [FunctionCall(name.strip(), dumps(arguments))]


# --- minimax1 (one JSON call per line inside <tool_calls>) ------------------------------------------

_MINIMAX1_PROMPT = (
    "You are provided with these tools:\n<tools>\n{tool_text}</tools>\n\n"
    "If you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide tool-name and "
    "json-object of arguments, following the format below:\n<tool_calls>\n"
    """{{"name": <tool-name-1>, "arguments": <args-json-object-1>}}\n...\n</tool_calls>"""
)
_MINIMAX1_CALLS = re.compile(r"<tool_calls>\s*(.+?)\s*</tool_calls>", re.DOTALL)


def minimax1_describe(tools: list[dict[str, Any]]) -> str:
    return _MINIMAX1_PROMPT.format(tool_text="".join(dumps(unwrap_tool(tool)) + "\n" for tool in tools))


def minimax1_format_calls(calls: list[FunctionCall]) -> str:
    lines = [dumps({"name": name, "arguments": json.loads(arguments)}) for name, arguments in calls]
    return "<tool_calls>\n" + "\n".join(lines) + "\n</tool_calls>"


def minimax1_extract(content: str) -> str | list[FunctionCall]:
    """Lines that are not a JSON call are skipped, as in LLaMA-Factory; with no call left the reply is text."""
    match = _MINIMAX1_CALLS.search(content)
    if not match:
        return content
    calls = []
    for line in filter(None, map(str.strip, match.group(1).split("\n"))):
        try:
            call = json.loads(line)
            calls.append(FunctionCall(call["name"], dumps(call["arguments"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return calls or content


FORMATS = {
    "default": ToolFormat("default", default_describe, default_format_calls, default_extract),
    "qwen": ToolFormat("qwen", qwen_describe, qwen_format_calls, qwen_extract),
    "ling": ToolFormat("ling", ling_describe, qwen_format_calls, qwen_extract),
    "llama3": ToolFormat("llama3", llama3_describe, llama3_format_calls, lambda text: json_extract(text, "parameters")),
    "mistral": ToolFormat(
        "mistral", mistral_describe, mistral_format_calls, lambda text: json_extract(text, "arguments")
    ),
    "glm4": ToolFormat("glm4", glm4_describe, glm4_format_calls, glm4_extract),
    "minimax1": ToolFormat("minimax1", minimax1_describe, minimax1_format_calls, minimax1_extract),
}
