"""The template engine against hand-written expected text and the tokenizers' own chat templates."""

from __future__ import annotations

import json

import pytest

from lf_ray.data.formatters import ToolFormatter
from lf_ray.data.templates import (
    _add_extra_special_tokens,
    build_template,
    get_template,
    resolve_template,
    template_table,
)
from lf_ray.errors import TemplateError

MULTITURN = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am Lumen."},
]
HEADER = "<|start_header_id|>{}<|end_header_id|>\n\n"
LLAMA3_TEXT = (
    "<|begin_of_text|>"
    + HEADER.format("system") + "Be brief.<|eot_id|>"
    + HEADER.format("user") + "Hi<|eot_id|>" + HEADER.format("assistant") + "Hello!<|eot_id|>"
    + HEADER.format("user") + "Who are you?<|eot_id|>" + HEADER.format("assistant") + "I am Lumen.<|eot_id|>"
)  # fmt: skip
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}
TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "function", "content": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
    {"role": "observation", "content": '{"temperature": 18}'},
    {"role": "assistant", "content": "It is 18 degrees."},
]


def _decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=False)


def test_llama3_multiturn_text_and_pairs(llama_tokenizer):
    template = resolve_template(llama_tokenizer, "llama3")
    assert template.render(llama_tokenizer, MULTITURN, system="Be brief.") == LLAMA3_TEXT
    pairs = template.encode_multiturn(llama_tokenizer, MULTITURN, system="Be brief.")
    assert [(_decode(llama_tokenizer, s), _decode(llama_tokenizer, t)) for s, t in pairs] == [
        (
            "<|begin_of_text|>" + HEADER.format("system") + "Be brief.<|eot_id|>"
            + HEADER.format("user") + "Hi<|eot_id|>" + HEADER.format("assistant"),
            "Hello!<|eot_id|>",
        ),
        (HEADER.format("user") + "Who are you?<|eot_id|>" + HEADER.format("assistant"), "I am Lumen.<|eot_id|>"),
    ]  # fmt: skip


def test_llama3_ids_equal_the_tokenizers_chat_template(llama_tokenizer):
    template = resolve_template(llama_tokenizer, "llama3")
    pairs = template.encode_multiturn(llama_tokenizer, MULTITURN, system="Be brief.")
    ours = [token for source, target in pairs for token in source + target]
    messages = [{"role": "system", "content": "Be brief."}, *MULTITURN]
    theirs = llama_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    assert ours == list(theirs)
    assert llama_tokenizer.apply_chat_template(messages, tokenize=False) == LLAMA3_TEXT


def test_llama3_replaces_eos_with_eot_and_pads(llama_tokenizer):
    assert llama_tokenizer.eos_token == "<|end_of_text|>"
    template = resolve_template(llama_tokenizer, "llama3")
    assert llama_tokenizer.eos_token == "<|eot_id|>"
    assert llama_tokenizer.pad_token_id is not None
    stop_ids = template.get_stop_token_ids(llama_tokenizer)
    assert stop_ids == sorted(llama_tokenizer.convert_tokens_to_ids(["<|eot_id|>", "<|eom_id|>"]))


def test_qwen_tools_match_the_real_qwen_chat_template(qwen_tokenizer):
    template = resolve_template(qwen_tokenizer, "qwen")
    ours = template.render(qwen_tokenizer, TOOL_CONVERSATION, tools=json.dumps([WEATHER_TOOL]))
    hf_messages = [
        TOOL_CONVERSATION[0],
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": '{"temperature": 18}'},
        TOOL_CONVERSATION[3],
    ]
    tools = [{"type": "function", "function": WEATHER_TOOL}]
    theirs = qwen_tokenizer.apply_chat_template(hf_messages, tools=tools, tokenize=False)
    assert ours == theirs
    assert "<tool_call>\n" + json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}}) in ours
    assert ours.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.")


def test_qwen_default_system_and_generation_prompt(qwen_tokenizer):
    template = resolve_template(qwen_tokenizer, "qwen")
    messages = [{"role": "user", "content": "Hi"}]
    ours = template.render(qwen_tokenizer, messages, add_generation_prompt=True)
    assert ours == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert ours == qwen_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_derived_template_reproduces_qwen(qwen_tokenizer):
    derived = resolve_template(qwen_tokenizer, None)
    table = get_template("qwen")
    assert derived.default_system == table.default_system
    conversation = MULTITURN[:2]
    assert derived.render(qwen_tokenizer, conversation) == table.render(qwen_tokenizer, conversation)


def test_default_template_text(llama_tokenizer):
    template = resolve_template(llama_tokenizer, "default")
    eos = llama_tokenizer.eos_token
    assert template.render(llama_tokenizer, MULTITURN[:2], system="S") == (
        f"System: S{eos}\nHuman: Hi{eos}\nAssistant:Hello!{eos}\n"
    )


def test_llama2_fuses_system_into_first_user_turn(llama_tokenizer):
    template = resolve_template(llama_tokenizer, "llama2")
    bos, eos = llama_tokenizer.bos_token, llama_tokenizer.eos_token
    assert template.render(llama_tokenizer, MULTITURN, system="S") == (
        f"{bos}[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST]Hello!{eos}{bos}[INST] Who are you? [/INST]I am Lumen.{eos}"
    )


def test_mistral_tool_call_and_result(llama_tokenizer):
    template = resolve_template(llama_tokenizer, "mistral")
    text = template.render(llama_tokenizer, TOOL_CONVERSATION, tools=json.dumps([WEATHER_TOOL]))
    eos = llama_tokenizer.eos_token
    assert text.startswith(f"{llama_tokenizer.bos_token}[INST] [AVAILABLE_TOOLS] [")
    assert f'[TOOL_CALLS] [{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}]{eos}' in text
    assert '[TOOL_RESULTS] {"content": {"temperature": 18}}[/TOOL_RESULTS] It is 18 degrees.' in text


@pytest.mark.parametrize("enable_thinking", [True, False])
def test_qwen3_empty_thought_goes_to_answer_or_prompt(qwen_tokenizer, enable_thinking):
    template = resolve_template(qwen_tokenizer, "qwen3", enable_thinking=enable_thinking)
    prompt, answer = template.encode_oneturn(qwen_tokenizer, MULTITURN[:2])
    empty_thought = "<think>\n\n</think>\n\n"
    if enable_thinking:  # the model is trained to write the empty thought
        assert _decode(qwen_tokenizer, answer) == empty_thought + "Hello!<|im_end|>\n"
    else:  # the empty thought is given
        assert _decode(qwen_tokenizer, prompt).endswith("<|im_start|>assistant\n" + empty_thought)
        assert _decode(qwen_tokenizer, answer) == "Hello!<|im_end|>\n"


def test_qwen3_keeps_a_real_thought_and_strips_history_thoughts(qwen_tokenizer):
    template = resolve_template(qwen_tokenizer, "qwen3")
    messages = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd again\n</think>\n\n4"},
    ]
    prompt, answer = template.encode_oneturn(qwen_tokenizer, messages)
    assert "add\n" not in _decode(qwen_tokenizer, prompt)  # history thoughts removed
    assert _decode(qwen_tokenizer, answer) == "<think>\nadd again\n</think>\n\n4<|im_end|>\n"


THOUGHTFUL = [
    {"role": "user", "content": "1+1?"},
    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n2"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4"},
]


def test_preserve_thinking_keeps_the_history_thoughts(qwen_tokenizer):
    template = resolve_template(qwen_tokenizer, "qwen3", preserve_thinking=True)
    prompt, answer = template.encode_oneturn(qwen_tokenizer, THOUGHTFUL)
    assert "<|im_start|>assistant\n<think>\nadd\n</think>\n\n2<|im_end|>" in _decode(qwen_tokenizer, prompt)
    assert _decode(qwen_tokenizer, answer) == "<think>\n\n</think>\n\n4<|im_end|>\n"


@pytest.mark.parametrize("preserve", [False, True])
def test_mask_history_drops_history_thoughts_unless_preserve_thinking(qwen_tokenizer, preserve):
    """LLaMA-Factory 0.9.5: sft with mask_history trains on the last answer, whose context has no earlier thoughts;
    only the last answer gets an empty thought."""
    from lf_ray.data.processors import EncodeSettings, encode_supervised

    template = resolve_template(qwen_tokenizer, "qwen3", preserve_thinking=preserve)
    row = {"_prompt": THOUGHTFUL[:3], "_response": THOUGHTFUL[3:], "_system": "", "_tools": ""}
    encoded = encode_supervised(template, qwen_tokenizer, row, EncodeSettings(1024, mask_history=True))
    text = _decode(qwen_tokenizer, encoded["input_ids"])
    answer = [i for i, label in zip(encoded["input_ids"], encoded["labels"], strict=True) if label != -100]
    first_answer = "<think>\nadd\n</think>\n\n2" if preserve else "2"
    assert f"<|im_start|>assistant\n{first_answer}<|im_end|>\n<|im_start|>user\n2+2?" in text
    assert _decode(qwen_tokenizer, answer) == "<think>\n\n</think>\n\n4<|im_end|>\n"


def test_template_needing_tokens_the_tokenizer_lacks_is_refused(llama_tokenizer):
    with pytest.raises(TemplateError, match=r"needs the special token\(s\) <\|im_end\|>.*resize_vocab"):
        resolve_template(llama_tokenizer, "qwen")


def test_unknown_template_suggests_the_closest():
    with pytest.raises(TemplateError, match="unknown template `lama3`; did you mean `llama3`"):
        get_template("lama3")


def test_train_on_prompt_is_refused_with_efficient_eos(llama_tokenizer):
    with pytest.raises(TemplateError, match="efficient_eos"):
        resolve_template(llama_tokenizer, "fewshot", train_on_prompt=True)


def test_required_templates_are_in_the_table():
    required = {"default", "empty", "alpaca", "vicuna", "chatml", "qwen", "qwen3", "qwen3_nothink", "llama2"}
    required |= {"llama3", "mistral", "gemma", "phi4", "deepseek3"}
    assert required <= set(template_table())


def test_the_configs_tool_format_replaces_the_templates():
    from lf_ray.config import prepare_config
    from lf_ray.data.tokenizer_spec import tokenizer_spec

    keys = ["model_name_or_path=builtin:tiny-llama", "template=llama3"]
    _, own = tokenizer_spec(prepare_config(None, keys)).load()
    _, qwen = tokenizer_spec(prepare_config(None, [*keys, "tool_format=qwen"])).load()
    assert (own.format_tools.tool_format, qwen.format_tools.tool_format) == ("llama3", "qwen")
    tools = json.dumps([WEATHER_TOOL])
    assert qwen.format_tools.apply(tools) == ToolFormatter("qwen").apply(tools) != own.format_tools.apply(tools)


def test_named_token_slots_must_be_single_ids(llama_tokenizer):
    """A `{token: <sep>}` slot stands for one id: a tokenizer without that token is refused, not given None."""
    assert "<sep>" in get_template("yuan").special_tokens_used()
    _add_extra_special_tokens(llama_tokenizer, ["<eod>"])  # yuan's stop word
    with pytest.raises(TemplateError, match=r"needs the special token\(s\) <sep>, which the tokenizer"):
        resolve_template(llama_tokenizer, "yuan")


def test_a_table_row_with_an_unknown_key_is_refused():
    with pytest.raises(TemplateError, match=r"unknown key `empty_thougth` in templates.yaml:x; did you mean `empty_t"):
        build_template("x", {"user": ["{{content}}"], "empty_thougth": "</think>"})
    with pytest.raises(TemplateError, match="unknown tool_format `qwen9`"):
        build_template("x", {"tool_format": "qwen9"})
