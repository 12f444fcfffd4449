"""The OpenAI API over real HTTP: a real Ray Serve app (tiny Qwen + two trained LoRA adapters) on the session's Ray,
called with the official `openai` client and raw HTTP. Deployed once for the module (~15 s)."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time
from pathlib import Path

import openai
import pytest
import requests

from lf_ray.config import prepare_config
from lf_ray.constants import ENV_API_KEY
from lf_ray.serve.app import smoke_request, start_serve, stop_serve
from tests.serve.adapters import GREETING, PLAIN_ANSWER, WEATHER_QUESTION, WEATHER_TOOL

KEY = "sk-test-lf-ray"
pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint(ray_session, qwen_adapters):
    overrides = [
        "model_name_or_path=builtin:tiny-qwen",
        f"lora_modules={json.dumps(qwen_adapters)}",
        f"api_port={_free_port()}",
        'ray_actor_options={"num_cpus": 0.5}',
        "max_model_len=512",
        "serve_app_name=lf-ray-test",
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_API_KEY, KEY)
        ep = start_serve(prepare_config(None, overrides))
    yield ep
    stop_serve(ep)


@pytest.fixture(scope="module")
def client(endpoint):
    return openai.OpenAI(base_url=endpoint.url, api_key=KEY, max_retries=0)


def ask(client, model: str, content: str, **kwargs):
    messages = [{"role": "user", "content": content}]
    return client.chat.completions.create(model=model, messages=messages, temperature=0, **kwargs)


def test_models_lists_base_and_adapters(client, endpoint):
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny-qwen", "tools", "greeter"]
    assert [getattr(m, "parent", None) for m in models] == [None, "tiny-qwen", "tiny-qwen"]
    assert client.models.retrieve("greeter").id == "greeter"
    assert endpoint.model_ids == ["tiny-qwen", "tools", "greeter"]


def test_chat_non_stream_answers_with_the_adapter(client):
    response = ask(client, "greeter", "Who are you?")
    choice = response.choices[0]
    assert (choice.message.content, choice.finish_reason, response.model) == (GREETING, "stop", "greeter")
    assert response.usage.completion_tokens > 3
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_stream_matches_non_stream(client):
    whole = ask(client, "greeter", "Hello!")
    chunks = list(ask(client, "greeter", "Hello!", stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert len([d for d in deltas if d.content]) > 1  # token by token, not one piece
    assert "".join(d.content or "" for d in deltas) == whole.choices[0].message.content == GREETING
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_tool_call_non_stream(client):
    response = ask(client, "tools", WEATHER_QUESTION, tools=[WEATHER_TOOL])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})


def test_tool_call_streams_as_deltas(client):
    chunks = list(ask(client, "tools", WEATHER_QUESTION, tools=[WEATHER_TOOL], stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert not any(d.content for d in deltas)  # the call is never leaked as text
    calls = [tc for d in deltas for tc in d.tool_calls or []]
    assert calls[0].id.startswith("call_") and calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tools_offered_but_plain_answer_streams_as_content(client):
    chunks = list(ask(client, "tools", "Hello!", tools=[WEATHER_TOOL], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == PLAIN_ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_adapters_and_base_give_different_outputs(client):
    answers = {
        model: ask(client, model, "Hello!", max_tokens=12).choices[0].message.content
        for model in ("tiny-qwen", "tools", "greeter")
    }
    assert answers["greeter"] == GREETING and answers["tools"] == PLAIN_ANSWER
    assert len(set(answers.values())) == 3


def test_limits_stop_strings_and_seeded_sampling(client):
    assert ask(client, "greeter", "Hello!", max_tokens=2).choices[0].finish_reason == "length"
    stopped = ask(client, "greeter", "Hello!", stop=["second"]).choices[0]
    assert (stopped.message.content, stopped.finish_reason) == ("Greetings from the ", "stop")
    kwargs = {"n": 2, "seed": 7, "max_tokens": 8}
    first = client.chat.completions.create(model="tiny-qwen", messages=[{"role": "user", "content": "hi"}], **kwargs)
    again = client.chat.completions.create(model="tiny-qwen", messages=[{"role": "user", "content": "hi"}], **kwargs)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]


def test_completions(client):
    whole = client.completions.create(model="tiny-qwen", prompt="The weather", max_tokens=6, temperature=0)
    assert whole.object == "text_completion"
    assert (whole.choices[0].finish_reason, whole.usage.completion_tokens) == ("length", 6)
    streamed = client.completions.create(
        model="tiny-qwen", prompt="The weather", max_tokens=6, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text
    # an empty prompt starts a new document, as OpenAI's does: from the end-of-text token (Qwen has no BOS)
    empty = client.completions.create(model="tiny-qwen", prompt="", max_tokens=3, temperature=0)
    assert (empty.usage.prompt_tokens, empty.usage.completion_tokens) == (1, 3)


def test_sixteen_concurrent_requests_are_batched(client, endpoint):
    auth = {"Authorization": f"Bearer {KEY}"}
    before = requests.get(f"{endpoint.url}/stats", headers=auth).json()["batch_sizes"]

    def one(i: int) -> int:
        return ask(client, "tiny-qwen", f"Question number {i}", max_tokens=24).usage.completion_tokens

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert list(pool.map(one, range(16))) == [24] * 16
    after = requests.get(f"{endpoint.url}/stats", headers=auth).json()["batch_sizes"]
    new = {int(size): count - before.get(size, 0) for size, count in after.items() if count > before.get(size, 0)}
    assert sum(size * count for size, count in new.items()) == 16
    assert max(new) > 1, new


def test_a_short_request_finishes_while_a_long_stream_decodes(client, endpoint):
    """Continuous batching over HTTP: the short request joins the running decode instead of waiting for it."""
    auth = {"Authorization": f"Bearer {KEY}"}
    joined = requests.get(f"{endpoint.url}/stats", headers=auth).json()["joined_running"]
    arrivals: list[tuple[float, str | None]] = []
    first_chunk = threading.Event()

    def read_long() -> None:
        for chunk in ask(client, "tiny-qwen", "Tell me a long story", max_tokens=160, stream=True):
            arrivals.append((time.monotonic(), chunk.choices[0].finish_reason if chunk.choices else None))
            first_chunk.set()

    reader = threading.Thread(target=read_long)
    reader.start()
    assert first_chunk.wait(60)
    short = ask(client, "greeter", "Hello!", max_tokens=24)
    answered = time.monotonic()
    reader.join(120)
    assert short.choices[0].message.content == GREETING
    assert arrivals[-1][1] == "length"
    assert sum(1 for at, _ in arrivals if at > answered) > 20  # the long one went on decoding after
    assert requests.get(f"{endpoint.url}/stats", headers=auth).json()["joined_running"] == joined + 1


def _post(endpoint, path: str, body, key: str | None = KEY) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(f"{endpoint.url}{path}", data=content, headers=headers, timeout=60)


USER = [{"role": "user", "content": "hi"}]
BAD_REQUESTS = {
    "malformed_json": ('{"model": "tiny-qwen", "messages": [', KEY, 400, "invalid_json", None),
    "missing_messages": ({"model": "tiny-qwen"}, KEY, 422, None, "messages"),
    "unknown_role": (
        {"model": "tiny-qwen", "messages": [{"role": "wizard", "content": "x"}]},
        KEY,
        422,
        None,
        "messages.0.role",
    ),
    "roles_out_of_order": (
        {"model": "tiny-qwen", "messages": [{"role": "assistant", "content": "x"}, *USER]},
        KEY,
        400,
        None,
        "messages",
    ),
    "unknown_model": ({"model": "gpt-4", "messages": USER}, KEY, 404, "model_not_found", "model"),
    "bad_key": ({"model": "tiny-qwen", "messages": USER}, "sk-wrong", 401, "invalid_api_key", None),
    "no_key": ({"model": "tiny-qwen", "messages": USER}, None, 401, "invalid_api_key", None),
    "prompt_too_long": (
        {"model": "tiny-qwen", "messages": [{"role": "user", "content": "weather " * 600}]},
        KEY,
        400,
        "context_length_exceeded",
        "messages",
    ),
    "too_many_messages": ({"model": "tiny-qwen", "messages": USER * 1025}, KEY, 422, None, "messages"),
    "n_too_large": ({"model": "tiny-qwen", "messages": USER, "n": 17}, KEY, 422, None, "n"),
    "max_tokens_beyond_the_context": (
        {"model": "tiny-qwen", "messages": USER, "max_tokens": 600},  # max_model_len 512
        KEY,
        400,
        "context_length_exceeded",
        "max_tokens",
    ),
    "body_too_large": (
        {"model": "tiny-qwen", "messages": [{"role": "user", "content": "x" * (4 * 1024 * 1024)}]},
        KEY,
        413,
        "request_too_large",
        None,
    ),
    "deeply_nested_json": (
        '{"model": "tiny-qwen", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}",
        KEY,
        400,
        "invalid_json",
        None,
    ),
    "invalid_utf8": (
        b'{"model": "tiny-qwen", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        KEY,
        400,
        "invalid_json",
        None,
    ),
    "json_response_format": (
        {"model": "tiny-qwen", "messages": USER, "response_format": {"type": "json_object"}},
        KEY,
        400,
        None,
        "response_format",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=str)
def test_bad_requests_get_openai_errors(endpoint, case):
    body, key, status, code, param = BAD_REQUESTS[case]
    for stream in (False, True):
        payload = body if isinstance(body, (str, bytes)) else {**body, "stream": stream}
        response = _post(endpoint, "/chat/completions", payload, key)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"] and error["type"]
        assert (error["code"], error["param"]) == (code, param)
    ok = _post(endpoint, "/chat/completions", {"model": "tiny-qwen", "messages": USER, "max_tokens": 2})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2  # still serving


def test_openai_client_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        ask(client, "nope", "hi")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=client.base_url, api_key="wrong", max_retries=0).models.list()


def test_a_generative_model_refuses_to_score_texts(endpoint):
    answer = _post(endpoint, "/score/evaluation", {"model": "tiny-qwen", "messages": ["a text"]})
    assert answer.status_code == 405
    assert "is a generative model: /v1/score/evaluation needs a reward model" in answer.json()["error"]["message"]


def test_health_and_smoke_request(endpoint):
    health = requests.get(f"{endpoint.url.removesuffix('/v1')}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    body = smoke_request(endpoint)
    assert body["object"] == "chat.completion" and body["usage"]["completion_tokens"] >= 1


def test_a_chunked_body_growing_past_the_limit_gets_413(endpoint):
    """No Content-Length to refuse it by: the server counts what arrives and stops at 4 MiB."""

    def chunks():
        yield b'{"model": "tiny-qwen", "messages": [{"role": "user", "content": "'
        for _ in range(5):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    answer = requests.post(f"{endpoint.url}/chat/completions", data=chunks(), headers=headers, timeout=60)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"


def test_fuzzing_from_the_openapi_schema_meets_no_5xx_and_only_openai_errors(endpoint):
    """Cases that fit the API's own schema and cases that break it, over every route (`tests/serve/fuzz.py`)."""
    from tests.serve.fuzz import fuzz_api

    report = fuzz_api(endpoint.url.removesuffix("/v1"), KEY, model=endpoint.base_model, examples=100)
    assert report.held, [*report.server_errors[:5], *report.bodies_not_openai[:5]]
    assert report.cases == 200, report.cases
    assert report.statuses[200] > 0 and sum(n for status, n in report.statuses.items() if 400 <= status < 500) > 0


def test_the_api_key_appears_in_no_serve_log(endpoint):
    """The key reaches the ingress as a constructor argument; neither Serve's logs nor the worker output lf-ray
    routes to its own log file may show it (after the requests above, wrong keys among them)."""
    import ray

    from lf_ray.constants import lf_ray_home

    assert requests.get(f"{endpoint.url}/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    session_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    logs = [*(session_logs / "serve").rglob("*.log"), *(lf_ray_home() / "logs").glob("ray-*.log")]
    assert logs and [str(log) for log in logs if KEY.encode() in log.read_bytes()] == []


def test_overload_answers_503_recovers_and_a_dropped_stream_frees_its_slot(ray_session, tiny_qwen_path):
    """A second app whose replica works on 2 requests at once and queues 1 more: 10 long requests at once get 503s
    with OpenAI's body for what does not fit, and all is well once they end; a client that drops its stream after
    two chunks has its rows dropped from the running decode (`/v1/stats` counts it) long before its 400 tokens."""
    overrides = [
        "model_name_or_path=builtin:tiny-qwen",
        'ray_actor_options={"num_cpus": 0.5}',
        "max_ongoing_requests=2",
        "max_queued_requests=1",
        "serve_app_name=lf-ray-overload",
        "route_prefix=/overload",
        f"api_port={_free_port()}",
    ]
    ep = start_serve(prepare_config(None, overrides))
    try:
        long = {"model": "tiny-qwen", "messages": USER, "max_tokens": 96, "temperature": 0}
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: _post(ep, "/chat/completions", long, key=None), range(10)))
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) == {200, 503}, statuses  # some taken, the rest refused (how many: router timing)
        refused = next(answer for answer in answers if answer.status_code == 503).json()["error"]
        assert refused["code"] == "overloaded" and "max_queued_requests" in refused["message"]
        assert _post(ep, "/chat/completions", {**long, "max_tokens": 4}, key=None).status_code == 200  # recovered

        def cancelled() -> int:
            return requests.get(f"{ep.url}/stats", timeout=10).json()["cancelled"]

        before = cancelled()
        dropped = requests.post(
            f"{ep.url}/chat/completions", json={**long, "max_tokens": 400, "stream": True}, stream=True, timeout=60
        )
        lines = dropped.iter_lines()
        assert next(lines).startswith(b"data: ") and next(lines) is not None
        dropped.close()  # the client goes away mid-stream
        deadline = time.monotonic() + 20
        while cancelled() == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cancelled() == before + 1
        assert _post(ep, "/chat/completions", {**long, "max_tokens": 8}, key=None).status_code == 200
    finally:
        stop_serve(ep)
