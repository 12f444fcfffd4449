"""The tiny builtin models: real architectures, Llama-3 / Qwen2.5-shaped tokenizers and chat templates."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lf_ray.model.builtin import materialize_builtin

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
]

LLAMA_SPECIAL_IDS = {
    "<|begin_of_text|>": 2048,
    "<|end_of_text|>": 2049,
    "<|start_header_id|>": 2050,
    "<|end_header_id|>": 2051,
    "<|eot_id|>": 2052,
    "<|eom_id|>": 2053,
    "<|finetune_right_pad_id|>": 2054,
}
QWEN_SPECIAL_IDS = {
    "<|endoftext|>": 2048,
    "<|im_start|>": 2049,
    "<|im_end|>": 2050,
    "<tool_call>": 2051,
    "</tool_call>": 2052,
    "<tool_response>": 2053,
    "</tool_response>": 2054,
    "<think>": 2055,
    "</think>": 2056,
}


@pytest.fixture(scope="module")
def llama_tok():
    return AutoTokenizer.from_pretrained(materialize_builtin("tiny-llama"))


@pytest.fixture(scope="module")
def qwen_tok():
    return AutoTokenizer.from_pretrained(materialize_builtin("tiny-qwen"))


@pytest.mark.parametrize(
    ("name", "arch", "n_params", "vocab"),
    [("tiny-llama", "LlamaForCausalLM", 821_632, 2055), ("tiny-qwen", "Qwen2ForCausalLM", 559_360, 2057)],
)
def test_tiny_model_loads_and_gives_finite_loss(name: str, arch: str, n_params: int, vocab: int) -> None:
    path = materialize_builtin(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)

    assert type(model).__name__ == arch
    assert model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert len(tokenizer) == model.config.vocab_size == vocab

    batch = tokenizer(["The small cat walks in the garden.", "Why did Alice open the door?"], padding=True)
    batch = {k: torch.tensor(v) for k, v in batch.items()}
    loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.isfinite(loss)
    assert abs(loss.item() - math.log(vocab)) < 0.5  # random init: close to uniform over the vocabulary


def test_tiny_llama_special_tokens(llama_tok) -> None:
    assert {t: llama_tok.convert_tokens_to_ids(t) for t in LLAMA_SPECIAL_IDS} == LLAMA_SPECIAL_IDS
    assert (llama_tok.bos_token, llama_tok.eos_token, llama_tok.pad_token) == (
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|finetune_right_pad_id|>",
    )
    # Like Llama 3, plain encoding prepends bos; special tokens inside text stay single ids.
    ids = llama_tok("hi<|eot_id|><|start_header_id|>").input_ids
    assert ids[0] == 2048
    assert ids[-2:] == [2052, 2050]
    assert llama_tok("hi", add_special_tokens=False).input_ids[0] != 2048


def test_tiny_qwen_special_tokens(qwen_tok) -> None:
    assert {t: qwen_tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_IDS} == QWEN_SPECIAL_IDS
    assert (qwen_tok.bos_token, qwen_tok.eos_token, qwen_tok.pad_token) == (None, "<|im_end|>", "<|endoftext|>")
    ids = qwen_tok("<think>\nhm\n</think><tool_call>x</tool_call><|im_end|>").input_ids
    assert ids[0] == 2055
    assert [i for i in ids if i >= 2048] == [2055, 2056, 2051, 2052, 2050]


def test_byte_level_round_trip(llama_tok, qwen_tok) -> None:
    text = 'Héllo wörld! 世界 🙂 {"a": [1, 22, 333]}\n\tdef f(x):\n        return x ** 2'
    for tokenizer in (llama_tok, qwen_tok):
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text


def test_tiny_llama_chat_template(llama_tok) -> None:
    expected = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nThe capital of France is Paris.<|eot_id|>"
    )
    assert llama_tok.apply_chat_template(CONVERSATION, tokenize=False) == expected
    prompt = llama_tok.apply_chat_template(CONVERSATION[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is the capital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    ids = llama_tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    assert ids == llama_tok(expected, add_special_tokens=False).input_ids
    assert ids[:2] == [2048, 2050]  # one bos, not two


def test_tiny_qwen_chat_template(qwen_tok) -> None:
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>\n"
    )
    assert qwen_tok.apply_chat_template(CONVERSATION, tokenize=False) == expected
    prompt = qwen_tok.apply_chat_template(CONVERSATION[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = qwen_tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    assert ids == qwen_tok(expected).input_ids
    assert ids[0] == 2049


def test_tiny_qwen_chat_template_with_tools(qwen_tok) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather of a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": '{"temperature": 21}'},
        {"role": "assistant", "content": "It is 21 degrees in Paris."},
    ]
    expected = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": "Get the weather of a city.", '
        '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
        "</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call><|im_end|>\n"
        '<|im_start|>user\n<tool_response>\n{"temperature": 21}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\nIt is 21 degrees in Paris.<|im_end|>\n"
    )
    assert qwen_tok.apply_chat_template(messages, tools=tools, tokenize=False) == expected


@pytest.mark.parametrize(
    ("name", "eos_ids", "pad_id"), [("tiny-llama", [2049, 2053, 2052], 2054), ("tiny-qwen", [2050, 2048], 2048)]
)
def test_generation_config_stops_on_turn_end(name: str, eos_ids: list[int], pad_id: int) -> None:
    model = AutoModelForCausalLM.from_pretrained(materialize_builtin(name))
    assert model.generation_config.eos_token_id == eos_ids
    assert model.generation_config.pad_token_id == pad_id
    assert model.generation_config.do_sample is False
