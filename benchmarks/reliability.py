"""Serving under load, overload, dropped clients and bad requests: the figures of the README's "Reliability" table.

    python -m benchmarks.reliability                       # builtin tiny Qwen, 1,000 requests at 32 clients
    python -m benchmarks.reliability --requests 200 --clients 16   # (from the repository root)

Real HTTP to a real Ray Serve endpoint on 127.0.0.1 (a local Ray of 2 CPUs):
- load: `--requests` greedy chat requests from `--clients` concurrent clients; errors, p50 / p99 latency, req/s;
- overload: a second application whose replica takes 2 requests at once and queues 1 (`max_ongoing_requests`,
  `max_queued_requests`): `--clients` long requests at once; how many were refused with 503 and OpenAI's body,
  and whether the next request is answered;
- a dropped stream: a short request's latency on an idle replica, then right after a client dropped a 400-token
  stream after two chunks (ratio: 1.0 means the dropped rows no longer cost anything), and `/v1/stats`' count of
  cancelled requests;
- bad requests: the cases of `tests/serve/test_serve_http.py` (malformed or oversized bodies, bad schema, limits,
  keys), each sent streamed and not: how many got the expected status with an OpenAI error body, and 5xx seen;
- fuzzing: `--fuzz-examples` cases that fit the API's own OpenAPI schema and as many that break it
  (`tests/serve/fuzz.py`: schemathesis): 5xx seen, and errors without OpenAI's body.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import time

import requests

from benchmarks.serve import free_port, questions, summary
from lf_ray.config import prepare_config
from tests.serve.fuzz import fuzz_api
from tests.serve.test_serve_http import BAD_REQUESTS, KEY  # the test's corpus, and the key its cases are built with


def _post(url: str, body, key: str | None = KEY, **kwargs) -> requests.Response:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(f"{url}/chat/completions", data=data, headers=headers, timeout=300, **kwargs)


def load(url: str, model: str, count: int, clients: int) -> dict[str, float]:
    def one(text: str) -> tuple[float, int, int]:
        began = time.perf_counter()
        answer = _post(url, {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16})
        tokens = answer.json()["usage"]["completion_tokens"] if answer.status_code == 200 else 0
        return time.perf_counter() - began, tokens, answer.status_code

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, questions(count)))
    figures = summary([r[0] for r in results], sum(r[1] for r in results), time.perf_counter() - start)
    return {**figures, "errors": sum(r[2] != 200 for r in results)}


def overload(url: str, model: str, clients: int) -> dict[str, int]:
    body = {"model": model, "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 64}
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda _: _post(url, body), range(clients)))
    refused = [a for a in answers if a.status_code == 503]
    openai_bodies = sum(a.json().get("error", {}).get("code") == "overloaded" for a in refused)
    recovered = _post(url, {**body, "max_tokens": 4}).status_code == 200
    return {
        "sent": clients,
        "answered": sum(a.status_code == 200 for a in answers),
        "refused_503": len(refused),
        "openai_bodies": openai_bodies,
        "other": sum(a.status_code not in (200, 503) for a in answers),
        "recovered": recovered,
    }


def dropped_stream(url: str, model: str, repeats: int = 5) -> dict[str, float]:
    short = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0}

    def latency() -> float:
        began = time.perf_counter()
        assert _post(url, short).status_code == 200
        return time.perf_counter() - began

    idle = statistics.median(latency() for _ in range(repeats))
    after, cancelled_before = [], _stats(url)["cancelled"]
    for _ in range(repeats):
        stream = _post(url, {**short, "max_tokens": 400, "stream": True}, stream=True)
        lines = stream.iter_lines()
        next(lines), next(lines)
        stream.close()
        time.sleep(0.2)  # the replica notices at its next step
        after.append(latency())
    return {
        "idle_p50_s": idle,
        "after_drop_p50_s": statistics.median(after),
        "ratio": statistics.median(after) / idle,
        "cancelled": _stats(url)["cancelled"] - cancelled_before,
    }


def _stats(url: str) -> dict:
    return requests.get(f"{url}/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=30).json()


def bad_requests(url: str) -> dict[str, int]:
    tried = expected = server_errors = 0
    for body, key, status, code, param in BAD_REQUESTS.values():
        for stream in (False, True):
            payload = body if isinstance(body, (str, bytes)) else {**body, "stream": stream}
            answer = _post(url, payload, key)
            tried += 1
            server_errors += answer.status_code >= 500
            error = answer.json().get("error", {}) if answer.headers.get("content-type", "").startswith("app") else {}
            expected += answer.status_code == status and (error.get("code"), error.get("param")) == (code, param)
    return {"tried": tried, "as_expected": expected, "5xx": server_errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny-qwen")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--fuzz-examples", type=int, default=500, help="fuzz cases of each kind (fit / break)")
    args = parser.parse_args()

    import os

    import ray

    from lf_ray.serve.app import start_serve, stop_serve

    os.environ["API_KEY"] = KEY
    common = [f"model_name_or_path={args.model}", "max_model_len=512", f"api_port={free_port()}"]
    main_cfg = prepare_config(None, [*common, 'ray_actor_options={"num_cpus": 1}', "serve_app_name=reliability"])
    tight_cfg = prepare_config(
        None,
        [
            *common,
            'ray_actor_options={"num_cpus": 0.5}',
            "max_ongoing_requests=2",
            "max_queued_requests=1",
            "serve_app_name=reliability-tight",
            "route_prefix=/tight",
        ],
    )
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    endpoints = [start_serve(main_cfg), start_serve(tight_cfg)]
    main_ep, tight_ep = endpoints
    model = main_ep.base_model
    try:
        load(main_ep.url, model, 8, 4)  # warm-up
        loaded = load(main_ep.url, model, args.requests, args.clients)
        over = overload(tight_ep.url, model, args.clients)
        drop = dropped_stream(tight_ep.url, model)
        bad = bad_requests(main_ep.url)
        fuzzed = fuzz_api(main_ep.url.removesuffix("/v1"), KEY, model=model, examples=args.fuzz_examples)
    finally:
        for endpoint in endpoints:
            stop_serve(endpoint)
        ray.shutdown()
    print(f"# {args.model} on a local Ray of 2 CPUs, real HTTP on 127.0.0.1")
    print(
        f"load       {args.requests} requests x 16 tokens, {args.clients} clients: {loaded['errors']} errors, "
        f"p50 {loaded['p50_s']:.3f} s, p99 {loaded['p99_s']:.3f} s, {loaded['req_s']:.1f} req/s"
    )
    print(
        f"overload   {over['sent']} at once on 2 ongoing + 1 queued: {over['answered']} answered, "
        f"{over['refused_503']} refused 503 ({over['openai_bodies']} with OpenAI's body), {over['other']} other, "
        f"recovered: {over['recovered']}"
    )
    print(
        f"dropped    short request p50 {drop['idle_p50_s']:.3f} s idle, {drop['after_drop_p50_s']:.3f} s after a "
        f"dropped 400-token stream (x{drop['ratio']:.2f}); cancelled {drop['cancelled']} of 5"
    )
    print(f"bad input  {bad['tried']} requests, {bad['as_expected']} as expected, {bad['5xx']} 5xx")
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(fuzzed.statuses.items()))
    print(
        f"fuzzing    {fuzzed.cases} cases from the OpenAPI schema ({statuses}): {len(fuzzed.server_errors)} 5xx, "
        f"{len(fuzzed.bodies_not_openai)} errors without OpenAI's body"
    )
    for problem in (fuzzed.server_errors + fuzzed.bodies_not_openai)[:10]:
        print(f"           {problem}")


if __name__ == "__main__":
    main()
