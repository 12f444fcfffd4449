"""The pure request/response path: OpenAI bodies → LF conversation → sampling; engine deltas → OpenAI chunks."""

from __future__ import annotations

import json
import pickle

import pytest
from pydantic import ValidationError

from lf_ray.config import GeneratingArguments
from lf_ray.data.templates import get_template
from lf_ray.serve.api_errors import BadRequest, InvalidApiKey, ModelNotFound, unknown_model
from lf_ray.serve.engine import GenerationRow, RowDelta, SamplingParams
from lf_ray.serve.prompts import check_supported, to_conversation
from lf_ray.serve.protocol import ChatCompletionRequest
from lf_ray.serve.responses import PreparedRequest, ResponseBuilder
from lf_ray.serve.sampling import resolve_sampling
from lf_ray.serve.tool_stream import TOOL_CALL_OPENERS, ChoiceText

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def chat(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **fields})


# --- sampling: request fields over LF's generating defaults --------------------------------------------------


def test_left_out_fields_take_llama_factory_defaults():
    params = resolve_sampling(chat(), GeneratingArguments(), budget=10_000)
    assert params == SamplingParams(max_new_tokens=1024, do_sample=True, temperature=0.95, top_p=0.7, top_k=50)


def test_request_fields_win_and_budget_caps_tokens():
    request = chat(temperature=0.3, top_p=0.5, top_k=5, max_tokens=64, stop="END", seed=1)
    params = resolve_sampling(request, GeneratingArguments(), budget=40, max_tokens=64)
    assert (params.temperature, params.top_p, params.top_k) == (0.3, 0.5, 5)
    assert (params.max_new_tokens, params.stop, params.seed) == (40, ("END",), 1)


def test_temperature_zero_is_greedy_and_n_forces_sampling():
    greedy = resolve_sampling(chat(temperature=0), GeneratingArguments(), budget=100)
    assert (greedy.do_sample, greedy.temperature, greedy.top_p, greedy.top_k) == (False, 1.0, 1.0, 0)
    several = resolve_sampling(chat(n=3), GeneratingArguments(do_sample=False, temperature=0), budget=100)
    assert (several.do_sample, several.temperature) == (True, 1.0)


def test_penalties_map_onto_repetition_penalty_as_llama_factory_does():
    gen = GeneratingArguments()
    assert resolve_sampling(chat(presence_penalty=1.2), gen, budget=9).repetition_penalty == 1.2
    assert resolve_sampling(chat(frequency_penalty=0.0), gen, budget=9).repetition_penalty == 1.0
    assert resolve_sampling(chat(repetition_penalty=1.5, presence_penalty=1.1), gen, budget=9).repetition_penalty == 1.5
    with pytest.raises(BadRequest, match=r"presence_penalty: -0\.5") as err:
        resolve_sampling(chat(presence_penalty=-0.5), gen, budget=9)
    assert err.value.param == "presence_penalty"
    with pytest.raises(BadRequest, match="at most 4"):
        resolve_sampling(chat(stop=["a", "b", "c", "d", "e"]), gen, budget=9)


def test_schema_ranges_are_enforced_by_pydantic():
    for bad in ({"temperature": 3}, {"top_p": 0}, {"n": 0}, {"max_tokens": 0}, {"messages": [{"role": "x"}]}):
        with pytest.raises(ValidationError):
            ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **bad})
    with pytest.raises(ValidationError, match="messages"):
        ChatCompletionRequest.model_validate({"model": "m"})


# --- conversation ----------------------------------------------------------------------------------------------


def test_openai_messages_become_llama_factory_turns():
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    request = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Oslo?"}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'},
        ],
        tools=[TOOL],
    )
    messages, system, tools = to_conversation(request)
    assert system == "Be brief."
    assert messages == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "function", "content": json.dumps([{"name": "get_weather", "arguments": {"city": "Oslo"}}])},
        {"role": "observation", "content": '{"temp": 3}'},
    ]
    assert json.loads(tools) == [TOOL["function"]]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "no user message"),
        ([{"role": "assistant", "content": "x"}, USER], "message 0 .* has role `assistant`"),
        ([USER, USER], "message 1 .* has role `user`"),
        ([USER, {"role": "assistant", "content": "x"}], "ends with an assistant message"),
        ([USER, {"role": "system", "content": "late"}], r"messages\[1\] is a `system` message"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "image_url"),
    ],
)
def test_bad_conversations_are_refused_with_the_reason(messages, match):
    with pytest.raises(BadRequest, match=match):
        to_conversation(chat(messages=messages))


def test_tool_choice():
    assert to_conversation(chat(tools=[TOOL], tool_choice="none"))[2] is None
    named = chat(tools=[TOOL, {"function": {"name": "other"}}], tool_choice={"function": {"name": "other"}})
    assert json.loads(to_conversation(named)[2]) == [{"name": "other"}]
    for choice, match in (("required", "cannot force"), ({"function": {"name": "nope"}}, "'nope'")):
        with pytest.raises(BadRequest, match=match):
            to_conversation(chat(tools=[TOOL], tool_choice=choice))


def test_unsupported_features_are_refused_not_ignored():
    check_supported(chat(response_format={"type": "text"}))
    for fields in ({"response_format": {"type": "json_object"}}, {"logprobs": True}):
        with pytest.raises(BadRequest):
            check_supported(chat(**fields))


def test_api_errors_pickle_and_carry_openai_bodies():
    err = pickle.loads(pickle.dumps(unknown_model("gpt-4", ["a", "b"])))
    assert isinstance(err, ModelNotFound) and err.status == 404
    assert err.body() == {
        "error": {
            "message": "The model `gpt-4` does not exist on this server. "
            "Fix: use one of a, b (GET /v1/models lists them).",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert InvalidApiKey().status == 401 and InvalidApiKey().code == "invalid_api_key"


# --- streamed text that may be a tool call --------------------------------------------------------------------


def qwen_choice() -> ChoiceText:
    return ChoiceText(get_template("qwen").extract_tool, TOOL_CALL_OPENERS["qwen"])


def test_tool_call_is_held_back_then_parsed():
    choice = qwen_choice()
    pieces = ["\n", "<tool", "_call>\n", '{"name": "f", ', '"arguments": {"x": 1}}', "\n</tool_call>"]
    assert [choice.feed(p) for p in pieces] == [""] * len(pieces)
    rest, calls = choice.finish()
    assert rest == "" and [(c.name, json.loads(c.arguments)) for c in calls] == [("f", {"x": 1})]


def test_plain_text_streams_once_it_cannot_be_a_call():
    choice = qwen_choice()
    assert [choice.feed(p) for p in (" ", "<t", "able", " ok")] == ["", "", " <table", " ok"]
    assert choice.finish() == ("", [])
    no_tools = ChoiceText()
    assert no_tools.feed("<tool_call>") == "<tool_call>"


# --- response builder ------------------------------------------------------------------------------------------


def prepared(kind="chat", n=1, **fields) -> PreparedRequest:
    row = GenerationRow([1, 2, 3], SamplingParams(max_new_tokens=8))
    return PreparedRequest(kind=kind, model="m", rows=[row] * n, prompt_tokens=3, **fields)


def test_chat_stream_chunks_and_body_agree():
    builder = ResponseBuilder(prepared(n=2, include_usage=True, stream=True))
    chunks = builder.start()
    chunks += builder.step([RowDelta("Hel", 1), RowDelta("A", 1, "length")])
    chunks += builder.step([RowDelta("lo", 3, "stop"), None])
    assert [c["choices"][0]["delta"] for c in chunks if c["choices"]] == [
        {"role": "assistant", "content": ""},
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "A"},
        {},
        {"content": "lo"},
        {},
    ]
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert reasons[-3:] == ["length", None, "stop"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    body = builder.body()
    assert [c["message"]["content"] for c in body["choices"]] == ["Hello", "A"]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and body["object"] == "chat.completion"


def test_tool_calls_become_deltas_and_finish_reason_tool_calls():
    builder = ResponseBuilder(prepared(parse_tools=True), get_template("qwen").extract_tool, ("<tool_call>",))
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    chunks = builder.step([RowDelta(call, 20, "stop")])
    deltas = [c["choices"][0]["delta"] for c in chunks]
    head, arguments, end = deltas
    assert head["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}
    assert head["tool_calls"][0]["id"].startswith("call_")
    assert json.loads(arguments["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
    assert end == {} and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    message = builder.body()["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["id"] == head["tool_calls"][0]["id"]


def test_text_completion_chunks():
    builder = ResponseBuilder(prepared(kind="completion"))
    chunks = builder.start() + builder.step([RowDelta("ab", 2)]) + builder.step([RowDelta("c", 3, "length")])
    assert [c["choices"][0]["text"] for c in chunks] == ["ab", "c", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" and chunks[0]["object"] == "text_completion"
    assert builder.body()["choices"][0]["text"] == "abc"
