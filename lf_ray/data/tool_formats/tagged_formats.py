"""Tool formats that spell each argument out in tags: `glm4_moe` (`<arg_key>` / `<arg_value>`), `qwen3_5`
(`<function=...>` / `<parameter=...>`), `seed_oss` (the same inside `<seed:tool_call>`) and `minimax2`
(`<invoke name=...>` / `<parameter name=...>`).

The system text and the written calls are LLaMA-Factory's, character for character, including its quirks (glm4_moe's
calls have no closing `</tool_call>`, seed_oss writes `<function=name` without `>`, minimax2's calls lack the
`<minimax:tool_call>` wrapper), so training tokens match. Parsing accepts both LLaMA-Factory's spelling and the
model's own, so what a model trained either way answers is read back. Argument values: strings are written as they
are, anything else as JSON; reading back, a value that parses as JSON becomes that value, else it stays a string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lf_ray.data.tool_formats.base import FunctionCall, ToolFormat, dumps, parse_value, unwrap_tool, value_text
from lf_ray.data.tool_formats.json_formats import TOOLS_HEADER, qwen_extract, wrapped_tools_text

# --- glm4_moe (GLM-4.5 / 4.6 / 4.7) ------------------------------------------------------------------

_GLM4_MOE_PROMPT = (
    "\n\n" + TOOLS_HEADER + "For each function call, output the function name and arguments within the following "
    "XML format:\n<tool_call>{{function-name}}\n<arg_key>{{arg-key-1}}</arg_key>\n<arg_value>{{arg-value-1}}"
    "</arg_value>\n<arg_key>{{arg-key-2}}</arg_key>\n<arg_value>{{arg-value-2}}</arg_value>\n...\n</tool_call>\n"
)
_GLM4_MOE_CALL = re.compile(
    r"\s*([^\s<>]+)\s*((?:<arg_key>.*?</arg_key>\s*<arg_value>.*?</arg_value>\s*)*)(?:</tool_call>)?\s*", re.DOTALL
)
_GLM4_MOE_ARG = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)


def glm4_moe_describe(tools: list[dict[str, Any]]) -> str:
    return _GLM4_MOE_PROMPT.format(tool_text=wrapped_tools_text(tools))


def glm4_moe_format_calls(calls: list[FunctionCall]) -> str:
    texts = []
    for name, arguments in calls:
        args = "".join(
            f"\n<arg_key>{key}</arg_key>\n<arg_value>{value_text(value)}</arg_value>"
            for key, value in json.loads(arguments).items()
        )
        texts.append(f"\n<tool_call>{name}{args}")
    return "\n".join(texts)


def glm4_moe_extract(content: str) -> str | list[FunctionCall]:
    """The `<arg_key>` form (closing tag optional), or Qwen's JSON in `<tool_call>`, LLaMA-Factory's only reading."""
    parsed = qwen_extract(content)
    if isinstance(parsed, list) or "<tool_call>" not in content:
        return parsed
    calls = []
    for chunk in content.split("<tool_call>")[1:]:
        match = _GLM4_MOE_CALL.fullmatch(chunk)
        if not match:
            return content
        args = {key: parse_value(value, value) for key, value in _GLM4_MOE_ARG.findall(match.group(2))}
        calls.append(FunctionCall(match.group(1), dumps(args)))
    return calls


# --- qwen3_5 (Qwen3.5 / 3.6) and seed_oss: <function=name> <parameter=key>value</parameter> ------------

_QWEN3_5_PROMPT = (
    "\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>{tool_text}"
    "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
    "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
    "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n"
    "- Function calls MUST follow the specified format: "
    "an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language "
    "BEFORE the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your current knowledge "
    "and do not tell the user about function calls\n</IMPORTANT>"
)
_QWEN3_5_CALL = re.compile(r"<tool_call>\s*<function=\s*([^\s<>]+)\s*(.*?)\s*</function>\s*</tool_call>", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=(.*?)>(.*?)</parameter>", re.DOTALL)

_SEED_PROMPT = (
    "system\nYou are Doubao, a helpful AI assistant. You may call one or more functions to assist with the user query."
    "Tool List:\nYou are authorized to use the following tools (described in JSON Schema format). Before performing "
    "any task, you must decide how to call them based on the descriptions and parameters of these tools.{tool_text}\n"
    "工具调用请遵循如下格式:\n<seed:tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>value_1"
    "</parameter>\n<parameter=example_parameter_2>This is the value for the second parameter\nthat can span\nmultiple "
    "lines</parameter>\n</function>\n</seed:tool_call>\n"
)
# LLaMA-Factory writes `<function=name` (no `>`); Seed-OSS itself writes `<function=name>`: both are read.
_SEED_CALL = re.compile(
    r"<seed:tool_call>\s*<function=\s*([^\s<>]+)>?\s*(.*?)\s*</function>\s*</seed:tool_call>", re.DOTALL
)


def qwen3_5_describe(tools: list[dict[str, Any]]) -> str:
    return _QWEN3_5_PROMPT.format(tool_text="".join("\n" + dumps(unwrap_tool(tool)) for tool in tools))


def qwen3_5_format_calls(calls: list[FunctionCall]) -> str:
    texts = []
    for name, arguments in calls:
        params = "".join(
            f"\n<parameter={key}>\n{value_text(value)}\n</parameter>" for key, value in json.loads(arguments).items()
        )
        texts.append(f"<tool_call>\n<function={name}>{params}\n</function>\n</tool_call>")
    return "\n".join(texts)


def _parameter_calls(call: re.Pattern[str], content: str, *, strip_text: bool) -> str | list[FunctionCall]:
    """Calls written as `<function=name>` + `<parameter=key>value</parameter>`; a value that is not JSON stays
    text (stripped when `strip_text`). No call found: the content as it is."""
    calls = []
    for name, params in call.findall(content):
        args = {
            key: parse_value(value.strip(), value.strip() if strip_text else value)
            for key, value in _PARAMETER.findall(params.strip())
        }
        calls.append(FunctionCall(name.strip(), dumps(args)))
    return calls or content


def qwen3_5_extract(content: str) -> str | list[FunctionCall]:
    return _parameter_calls(_QWEN3_5_CALL, content, strip_text=True)


def seed_oss_describe(tools: list[dict[str, Any]]) -> str:
    return _SEED_PROMPT.format(tool_text="\n" + dumps(tools))  # the tools list as given, not unwrapped


def seed_oss_format_calls(calls: list[FunctionCall]) -> str:
    texts = []
    for name, arguments in calls:
        params = "".join(
            f"\n<parameter={key}>{value_text(value)}</parameter>" for key, value in json.loads(arguments).items()
        )
        texts.append(f"\n<seed:tool_call>\n<function={name}{params}\n</function>\n</seed:tool_call>")
    return "\n".join(texts)


def seed_oss_extract(content: str) -> str | list[FunctionCall]:
    return _parameter_calls(_SEED_CALL, content, strip_text=False)


# --- minimax2 (MiniMax-M2): <invoke name="..."> <parameter name="...">value</parameter> --------------------

_MINIMAX2_PROMPT = (
    "\n\n# Tools\n\nYou may call one or more tools to assist with the user query.\n"
    "Here are the tools available in JSONSchema format:\n\n<tools>\n{tool_text}</tools>\n\n"
    "When making tool calls, use XML format to invoke tools and pass parameters:\n"
    """\n<minimax:tool_call>\n<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n"""
    """<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n</minimax:tool_call>"""
)
_MINIMAX2_BLOCK = re.compile(r"<minimax:tool_call>\s*(.+?)\s*</minimax:tool_call>", re.DOTALL)
_INVOKE = re.compile(r"<invoke name=\"(.*?)\">(.*?)</invoke>", re.DOTALL)
_NAMED_PARAMETER = re.compile(r"<parameter name=\"(.*?)\">(.*?)</parameter>", re.DOTALL)


def minimax2_describe(tools: list[dict[str, Any]]) -> str:
    return _MINIMAX2_PROMPT.format(tool_text="".join(f"<tool>{dumps(unwrap_tool(tool))}</tool>\n" for tool in tools))


def minimax2_format_calls(calls: list[FunctionCall]) -> str:
    texts = []
    for name, arguments in calls:
        params = "".join(
            f'\n<parameter name="{key}">{value_text(value)}</parameter>' for key, value in json.loads(arguments).items()
        )
        texts.append(f'<invoke name="{name}">{params}\n</invoke>')
    return "\n".join(texts)


def minimax2_extract(content: str) -> str | list[FunctionCall]:
    """Invokes inside `<minimax:tool_call>` (the model's way), or bare ones (how LLaMA-Factory trains them)."""
    block = _MINIMAX2_BLOCK.search(content)
    calls = []
    for name, params in _INVOKE.findall(block.group(1) if block else content):
        args = {key: parse_value(value.strip(), value) for key, value in _NAMED_PARAMETER.findall(params)}
        calls.append(FunctionCall(name.strip(), dumps(args)))
    return calls or content


FORMATS = {
    "glm4_moe": ToolFormat("glm4_moe", glm4_moe_describe, glm4_moe_format_calls, glm4_moe_extract),
    "qwen3_5": ToolFormat("qwen3_5", qwen3_5_describe, qwen3_5_format_calls, qwen3_5_extract),
    "seed_oss": ToolFormat("seed_oss", seed_oss_describe, seed_oss_format_calls, seed_oss_extract),
    "minimax2": ToolFormat("minimax2", minimax2_describe, minimax2_format_calls, minimax2_extract),
}
