"""The Chat tab's engine: the top bar's model loaded with the serve engine, answers streamed as growing text."""

from __future__ import annotations

import itertools
import json

import pytest

from lf_ray.webui.web_chat import BoardChat, GenerationSettings, _calls_text, parse_tools

STATE = {"top.model_name_or_path": "builtin:tiny-qwen", "top.finetuning_type": "lora", "top.template": "qwen"}


def test_answers_stream_as_growing_text_and_follow_the_system_prompt(tiny_qwen_path):
    chat = BoardChat()
    assert chat.load(STATE) == "builtin:tiny-qwen" and chat.loaded
    greedy = GenerationSettings(max_new_tokens=12, temperature=0.0)
    messages = [{"role": "user", "content": "hello"}]
    texts = list(chat.stream(messages, settings=greedy))
    assert len(texts) > 2 and all(b.startswith(a) for a, b in itertools.pairwise(texts))
    assert texts[-1] == list(chat.stream(messages, settings=greedy))[-1]  # greedy: the same answer again
    prepare, prompt_tokens, systems = chat.service.prepare_chat, [], []

    def recording(request):
        prepared = prepare(request)
        prompt_tokens.append(prepared.prompt_tokens)
        systems.append([m.content for m in request.messages if m.role == "system"])
        return prepared

    chat.service.prepare_chat = recording
    list(chat.stream(messages, settings=greedy))
    list(chat.stream(messages, system="You are a pirate who answers in rhymes.", settings=greedy))
    assert systems == [[], ["You are a pirate who answers in rhymes."]]
    assert prompt_tokens[1] != prompt_tokens[0]  # it replaced the template's default system text
    chat.unload()
    assert not chat.loaded
    with pytest.raises(RuntimeError, match="no model is loaded"):
        next(chat.stream(messages))


def test_tools_box_accepts_openai_tools_or_bare_functions():
    function = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    assert parse_tools("") is None
    assert parse_tools(f"[{json.dumps(function)}]") == [{"type": "function", "function": function}]
    wrapped = [{"type": "function", "function": function}]
    assert parse_tools(json.dumps(wrapped)) == wrapped
    with pytest.raises(ValueError, match="JSON list"):
        parse_tools('{"name": "x"}')


def test_streamed_tool_call_deltas_are_joined():
    deltas = [
        {"index": 0, "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"city": '}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
    ]
    assert _calls_text(deltas) == '\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
