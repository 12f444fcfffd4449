"""Tool formats against LLaMA-Factory's tool_utils: the system text, the written calls, and calls read back.

Expected strings come from LLaMA-Factory's tests/data/test_formatter.py where it has them (glm4, lfm2), else from
its tool_utils definitions, written out.
"""

from __future__ import annotations

import json

import pytest

from lf_ray.data.tool_formats import TOOL_FORMATS, FunctionCall, get_tool_format
from lf_ray.errors import TemplateError
from lf_ray.serve.tool_stream import TOOL_CALL_OPENERS

TOOLS = [
    {
        "name": "test_tool",
        "description": "tool_desc",
        "parameters": {
            "type": "object",
            "properties": {
                "foo": {"type": "string", "description": "foo_desc"},
                "bar": {"type": "number", "description": "bar_desc"},
            },
            "required": ["foo"],
        },
    }
]
TOOL_JSON = json.dumps(TOOLS[0])
WRAPPED_JSON = json.dumps({"type": "function", "function": TOOLS[0]})
CALL = FunctionCall("tool_name", '{"foo": "bar", "size": 10}')
OTHER_CALL = FunctionCall("other_tool", '{"foo": "job", "size": 2}')


def _describe(name: str) -> str:
    return get_tool_format(name).describe(TOOLS)


def _extract(name: str, text: str) -> str | list[FunctionCall]:
    return get_tool_format(name).extract_calls(text)


# --- every format ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOOL_FORMATS))
def test_every_format_round_trips(name):
    tool_format = TOOL_FORMATS[name]
    calls = [FunctionCall("get_weather", '{"city": "Paris"}'), FunctionCall("get_time", '{"zone": "UTC"}')]
    if name == "glm4":  # one call per message
        calls = calls[:1]
    assert tool_format.extract_calls(tool_format.format_calls(calls)) == calls
    assert tool_format.extract_calls("just text") == "just text"
    assert "test_tool" in tool_format.describe(TOOLS)


@pytest.mark.parametrize("name", sorted(set(TOOL_FORMATS) - {"glm4"}))
def test_every_format_has_stream_openers_that_open_its_calls(name):
    """Serving holds a reply back while it may be a tool call; the openers must match what the format writes."""
    text = TOOL_FORMATS[name].format_calls([CALL]).lstrip()
    assert any(text.startswith(opener) for opener in TOOL_CALL_OPENERS[name])


def test_unknown_tool_format_lists_the_known_ones():
    with pytest.raises(TemplateError, match=r"unknown tool_format `qwen4`; choose one of: default, gemma4, glm4, "):
        get_tool_format("qwen4")


def test_default_tool_description_lists_arguments():
    text = _describe("default")
    assert "> Tool Name: test_tool\nTool Description: tool_desc\nTool Args:\n" in text
    assert "  - foo (string, required): foo_desc\n  - bar (number): bar_desc\n\n" in text
    assert "Action: tool name (one of [test_tool])" in text


# --- glm4 (GLM-4, ChatGLM3) ---------------------------------------------------------------------------------


def test_glm4_describes_each_tool_as_indented_json():
    assert _describe("glm4") == (
        "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
        "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具\n\n"
        f"## test_tool\n\n{json.dumps(TOOLS[0], indent=4, ensure_ascii=False)}\n"
        "在调用上述函数时，请使用 Json 格式表示调用的参数。"
    )


def test_glm4_writes_and_reads_a_name_line_and_json():
    assert TOOL_FORMATS["glm4"].format_calls([CALL]) == 'tool_name\n{"foo": "bar", "size": 10}'
    assert _extract("glm4", 'test_tool\n{"foo": "bar", "size": 10}\n') == [("test_tool", '{"foo": "bar", "size": 10}')]


@pytest.mark.parametrize("text", ["Sure.\n{not json", "Result:\n42", "no newline at all"])
def test_glm4_text_that_is_no_call_stays_text(text):
    assert _extract("glm4", text) == text


def test_glm4_refuses_parallel_calls():
    with pytest.raises(TemplateError, match="one call per message, got 2 parallel calls"):
        TOOL_FORMATS["glm4"].format_calls([CALL, OTHER_CALL])


# --- glm4_moe (GLM-4.5 / 4.6 / 4.7) ------------------------------------------------------------------------


def test_glm4_moe_describes_tools_in_a_tools_block():
    assert _describe("glm4_moe") == (
        "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{WRAPPED_JSON}\n"
        "</tools>\n\nFor each function call, output the function name and arguments within the following XML format:"
        "\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>"
        "\n<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>\n"
    )


def test_glm4_moe_writes_arg_tags_like_llama_factory():
    """LLaMA-Factory writes no closing </tool_call>; training tokens follow it."""
    assert TOOL_FORMATS["glm4_moe"].format_calls([CALL, OTHER_CALL]) == (
        "\n<tool_call>tool_name\n<arg_key>foo</arg_key>\n<arg_value>bar</arg_value>"
        "\n<arg_key>size</arg_key>\n<arg_value>10</arg_value>\n"
        "\n<tool_call>other_tool\n<arg_key>foo</arg_key>\n<arg_value>job</arg_value>"
        "\n<arg_key>size</arg_key>\n<arg_value>2</arg_value>"
    )


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>tool_name\n<arg_key>foo</arg_key>\n<arg_value>bar</arg_value>\n"
        "<arg_key>size</arg_key>\n<arg_value>10</arg_value>\n</tool_call>",  # GLM-4.5's own spelling
        '<tool_call>\n{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}\n</tool_call>',  # Qwen's JSON
    ],
)
def test_glm4_moe_reads_arg_tags_and_json(text):
    assert _extract("glm4_moe", text) == [CALL]


def test_glm4_moe_text_that_is_no_call_stays_text():
    assert _extract("glm4_moe", "<tool_call>hello world</tool_call>") == "<tool_call>hello world</tool_call>"


# --- qwen3_5 (Qwen3.5 / 3.6) --------------------------------------------------------------------------------


def test_qwen3_5_describes_tools_and_the_call_syntax():
    assert _describe("qwen3_5") == (
        f"\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n{TOOL_JSON}\n</tools>\n\n"
        "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
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


def test_qwen3_5_writes_function_and_parameter_tags():
    assert TOOL_FORMATS["qwen3_5"].format_calls([CALL]) == (
        "<tool_call>\n<function=tool_name>\n<parameter=foo>\nbar\n</parameter>\n<parameter=size>\n10\n</parameter>"
        "\n</function>\n</tool_call>"
    )


def test_qwen3_5_reads_calls_after_reasoning_text():
    text = (
        "I will look it up.\n<tool_call>\n<function=tool_name>\n<parameter=foo>\nbar\n</parameter>\n"
        "<parameter=size>\n10\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=other_tool>\n"
        "<parameter=foo>\njob\n</parameter>\n<parameter=size>\n2\n</parameter>\n</function>\n</tool_call>"
    )
    assert _extract("qwen3_5", text) == [CALL, OTHER_CALL]


def test_qwen3_5_an_unfinished_call_stays_text():
    text = "<tool_call>\n<function=tool_name>\n<parameter=foo>\nbar"
    assert _extract("qwen3_5", text) == text


# --- seed_oss (Seed-OSS) ----------------------------------------------------------------------------------


def test_seed_oss_describes_the_tools_list_as_given():
    text = _describe("seed_oss")
    assert text.startswith("system\nYou are Doubao, a helpful AI assistant. You may call one or more functions")
    assert f"parameters of these tools.\n{json.dumps(TOOLS)}\n工具调用请遵循如下格式:\n<seed:tool_call>\n" in text
    assert text.endswith("multiple lines</parameter>\n</function>\n</seed:tool_call>\n")


def test_seed_oss_writes_calls_like_llama_factory():
    """`<function=name` without `>` is LLaMA-Factory's spelling, kept so training tokens match."""
    assert TOOL_FORMATS["seed_oss"].format_calls([CALL]) == (
        "\n<seed:tool_call>\n<function=tool_name\n<parameter=foo>bar</parameter>\n<parameter=size>10</parameter>"
        "\n</function>\n</seed:tool_call>"
    )


def test_seed_oss_reads_the_models_own_spelling():
    text = "<seed:tool_call>\n<function=tool_name>\n<parameter=foo>bar</parameter>\n<parameter=size>10</parameter>\n"
    assert _extract("seed_oss", text + "</function>\n</seed:tool_call>") == [CALL]
    assert _extract("seed_oss", text) == text  # no closing tags: text


# --- minimax1 / minimax2 (MiniMax-M1 / M2) --------------------------------------------------------------


def test_minimax1_describes_and_writes_json_lines():
    assert _describe("minimax1") == (
        f"You are provided with these tools:\n<tools>\n{TOOL_JSON}\n</tools>\n\n"
        "If you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide tool-name and "
        "json-object of arguments, following the format below:\n<tool_calls>\n"
        '{"name": <tool-name-1>, "arguments": <args-json-object-1>}\n...\n</tool_calls>'
    )
    assert TOOL_FORMATS["minimax1"].format_calls([CALL, OTHER_CALL]) == (
        '<tool_calls>\n{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}\n'
        '{"name": "other_tool", "arguments": {"foo": "job", "size": 2}}\n</tool_calls>'
    )


def test_minimax1_skips_lines_that_are_no_call():
    text = '<tool_calls>\n{"name": "tool_name", "arguments": {"foo": "bar", "size": 10}}\nnot json\n</tool_calls>'
    assert _extract("minimax1", text) == [CALL]
    assert _extract("minimax1", "<tool_calls>\nnot json\n</tool_calls>") == "<tool_calls>\nnot json\n</tool_calls>"


def test_minimax2_describes_tools_and_writes_invokes():
    text = _describe("minimax2")
    assert text.startswith("\n\n# Tools\n\nYou may call one or more tools to assist with the user query.\n")
    assert f"<tools>\n<tool>{TOOL_JSON}</tool>\n</tools>\n\nWhen making tool calls" in text
    assert text.endswith(
        '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n</minimax:tool_call>'
    )
    assert TOOL_FORMATS["minimax2"].format_calls([CALL]) == (
        '<invoke name="tool_name">\n<parameter name="foo">bar</parameter>\n<parameter name="size">10</parameter>'
        "\n</invoke>"
    )


def test_minimax2_reads_invokes_with_or_without_the_wrapper():
    invokes = (
        '<invoke name="tool_name">\n<parameter name="foo">bar</parameter>\n<parameter name="size">10</parameter>\n'
        '</invoke>\n<invoke name="other_tool">\n<parameter name="foo">job</parameter>\n'
        '<parameter name="size">2</parameter>\n</invoke>'
    )
    assert _extract("minimax2", f"<minimax:tool_call>\n{invokes}\n</minimax:tool_call>") == [CALL, OTHER_CALL]
    assert _extract("minimax2", invokes) == [CALL, OTHER_CALL]
    unfinished = '<minimax:tool_call>\n<invoke name="tool_name">\n<parameter name="foo">bar'
    assert _extract("minimax2", unfinished) == unfinished


# --- gemma4 ------------------------------------------------------------------------------------------------


def test_gemma4_describes_declarations():
    assert _describe("gemma4") == (
        'declaration:test_tool{description:<|"|>tool_desc<|"|>,parameters:{properties:{foo:{description:<|"|>foo_desc'
        '<|"|>,type:<|"|>STRING<|"|>},bar:{description:<|"|>bar_desc<|"|>,type:<|"|>NUMBER<|"|>}},required:'
        '[<|"|>foo<|"|>],type:<|"|>OBJECT<|"|>}}'
    )


def test_gemma4_writes_calls_with_quoted_strings_and_sorted_keys():
    call = FunctionCall("tool_name", '{"size": 10, "foo": "bar", "opts": {"b": true, "a": [1, null]}}')
    assert TOOL_FORMATS["gemma4"].format_calls([call, OTHER_CALL]) == (
        '<|tool_call>call:tool_name{foo:<|"|>bar<|"|>,opts:{a:[1,null],b:true},size:10}<tool_call|>'
        '<|tool_call>call:other_tool{foo:<|"|>job<|"|>,size:2}<tool_call|>'
    )


def test_gemma4_reads_calls_and_keeps_unparsable_ones_as_text():
    text = '<|tool_call>call:tool_name{foo:<|"|>bar<|"|>,size:10}<tool_call|>'
    assert _extract("gemma4", text) == [CALL]
    broken = '<|tool_call>call:tool_name{foo:<|"|>bar}<tool_call|>'
    assert _extract("gemma4", broken) == broken  # LLaMA-Factory would return the raw text as the arguments


# --- lfm2 (LFM 2.5) ---------------------------------------------------------------------------------------


def test_lfm2_describes_and_writes_python_calls():
    assert _describe("lfm2") == "List of tools: <|tool_list_start|>" + json.dumps(TOOLS) + "<|tool_list_end|>"
    assert TOOL_FORMATS["lfm2"].format_calls([CALL, CALL]) == (
        '<|tool_call_start|>[tool_name(foo="bar", size=10), tool_name(foo="bar", size=10)]<|tool_call_end|>'
    )


def test_lfm2_reads_nested_values_and_json_literals():
    text = '<|tool_call_start|>[search(query="test", options={"limit": 10}, items=[1, 2], on=true)]<|tool_call_end|>'
    (call,) = _extract("lfm2", text)
    assert call.name == "search"
    assert json.loads(call.arguments) == {"query": "test", "options": {"limit": 10}, "items": [1, 2], "on": True}


@pytest.mark.parametrize(
    "text",
    [
        "<|tool_call_start|>[tool_name(foo=bar)]<|tool_call_end|>",  # a bare name is no value
        "<|tool_call_start|>[tool_name(foo=1]<|tool_call_end|>",  # not Python
        "<|tool_call_start|>[tool_name(foo=1)]",  # unfinished
    ],
)
def test_lfm2_text_that_is_no_call_stays_text(text):
    assert _extract("lfm2", text) == text


# --- ling (Ling 2.0) -----------------------------------------------------------------------------------------


def test_ling_is_qwen_without_the_leading_blank_line_and_with_thinking_off():
    assert _describe("ling") == _describe("qwen")[2:] + "\ndetailed thinking off"
    assert TOOL_FORMATS["ling"].format_calls([CALL]) == TOOL_FORMATS["qwen"].format_calls([CALL])
    assert _extract("ling", "<tool_call>\nnot json\n</tool_call>") == "<tool_call>\nnot json\n</tool_call>"
