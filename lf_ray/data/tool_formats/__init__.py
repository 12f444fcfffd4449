"""How each model family writes tool descriptions and tool calls, and how calls are parsed back.

A tool format has three functions: `describe` (tools → system text), `format_calls` (calls → assistant
text) and `extract_calls` (assistant text → calls, or the text itself when it holds no call). They reproduce
LLaMA-Factory's tool formats; the modules beside this one group them by how a call is written: JSON
(`json_formats`), arguments in tags (`tagged_formats`) or a function-call expression (`call_syntax_formats`).
"""

from __future__ import annotations

from lf_ray.data.tool_formats import call_syntax_formats, json_formats, tagged_formats
from lf_ray.data.tool_formats.base import FunctionCall, ToolFormat
from lf_ray.errors import TemplateError

__all__ = ["TOOL_FORMATS", "FunctionCall", "ToolFormat", "get_tool_format"]

TOOL_FORMATS: dict[str, ToolFormat] = {
    **json_formats.FORMATS,
    **tagged_formats.FORMATS,
    **call_syntax_formats.FORMATS,
}


def get_tool_format(name: str) -> ToolFormat:
    if name not in TOOL_FORMATS:
        raise TemplateError(
            f"unknown tool_format `{name}`; choose one of: {', '.join(sorted(TOOL_FORMATS))} "
            "(set `tool_format:` in the config or leave it unset to use the template's own)"
        )
    return TOOL_FORMATS[name]
