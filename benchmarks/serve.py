"""Serving throughput and latency: lf-ray's Ray Serve endpoint at 1, 8 and 32 concurrent clients, against sequential
transformers `generate` in one process on the same model and prompts, and optionally against any other
OpenAI-compatible server (`--against URL`, e.g. LLaMA-Factory's `llamafactory-cli api` on the same model) at the
same levels.

    python benchmarks/serve.py                                  # SmolLM2-135M, 32 requests per level
    python benchmarks/serve.py --model builtin:tiny-qwen --requests 64 --max-tokens 48
    python benchmarks/serve.py --model /path/to/model --against http://127.0.0.1:8001/v1 --levels 1,16,32

Every request is greedy with the same token budget, stopping at the template's stop tokens, so both sides produce
the same tokens. Latency is per request (send to full answer); output tokens are the server's `usage` counts
and the baseline's generated lengths. Ratios are against the baseline.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import statistics
import time

from lf_ray.config import prepare_config
from lf_ray.constants import DEMO_DATA_DIR


def questions(count: int) -> list[str]:
    rows = json.loads((DEMO_DATA_DIR / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    texts = [row["instruction"] for row in rows if not row.get("input")]
    return [texts[i % len(texts)] for i in range(count)]


def summary(latencies: list[float], tokens: int, wall: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "req_s": len(latencies) / wall,
        "tok_s": tokens / wall,
        "p50_s": statistics.median(ordered),
        "p99_s": p99,
    }


def baseline(cfg, prompts: list[str], max_tokens: int) -> dict[str, float]:
    """Sequential `model.generate` in this process, the model and prompt ids built exactly as the server builds them."""
    import torch

    from lf_ray.serve.service import ChatService

    service = ChatService.from_config(cfg)
    model, tokenizer, template = service.engine.model, service.tokenizer, service.template
    stop_ids = template.get_stop_token_ids(tokenizer)
    latencies, tokens = [], 0
    start = time.perf_counter()
    for text in prompts:
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        ids = template.encode_oneturn(tokenizer, messages)[0]
        began = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=stop_ids,
                pad_token_id=tokenizer.pad_token_id,
            )
        latencies.append(time.perf_counter() - began)
        tokens += out.shape[1] - len(ids)
    return summary(latencies, tokens, time.perf_counter() - start)


def load(client, model: str, prompts: list[str], clients: int, max_tokens: int) -> dict[str, float]:
    def one(text: str) -> tuple[float, int]:
        began = time.perf_counter()
        response = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0
        )
        return time.perf_counter() - began, response.usage.completion_tokens

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, prompts))
    wall = time.perf_counter() - start
    return summary([r[0] for r in results], sum(r[1] for r in results), wall)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:smollm2-135m")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--levels", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--idle-wait", type=float, default=0.0, help="batch_wait_timeout_s of the lf-ray endpoint")
    parser.add_argument("--against", help="base URL of another OpenAI-compatible server on the same model")
    parser.add_argument("--against-model", default="default", help="the `model` to send to --against")
    args = parser.parse_args()

    import openai
    import ray

    from lf_ray.serve.app import start_serve, stop_serve

    levels = [int(level) for level in args.levels.split(",")]
    cfg = prepare_config(
        None,
        [
            f"model_name_or_path={args.model}",
            f"api_port={free_port()}",
            'ray_actor_options={"num_cpus": 2}',
            f"max_batch_size={args.max_batch_size}",
            f"batch_wait_timeout_s={args.idle_wait}",
            "serve_app_name=lf-ray-bench",
        ],
    )
    prompts = questions(args.requests)
    base = baseline(cfg, prompts, args.max_tokens)
    other = {}
    if args.against:
        against = openai.OpenAI(base_url=args.against, api_key="none", max_retries=0, timeout=600)
        load(against, args.against_model, prompts[:2], 1, 4)  # warm-up
        for clients in levels:
            other[clients] = load(against, args.against_model, prompts, clients, args.max_tokens)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    started = time.perf_counter()
    endpoint = start_serve(cfg)
    print(f"# deployed {endpoint.base_model} in {time.perf_counter() - started:.1f} s at {endpoint.url}")
    client = openai.OpenAI(base_url=endpoint.url, api_key="none", max_retries=0, timeout=600)
    load(client, endpoint.base_model, prompts[:2], 1, 4)  # warm-up
    rows = {"sequential generate": (base, None)}
    try:
        for clients in levels:
            ours = load(client, endpoint.base_model, prompts, clients, args.max_tokens)
            if clients in other:
                rows[f"--against, {clients} clients"] = (other[clients], None)
            rows[f"serve, {clients} clients"] = (ours, other.get(clients))
    finally:
        stop_serve(endpoint)
        ray.shutdown()
    print(f"# {args.model}, {args.requests} requests per row, greedy, max_tokens {args.max_tokens}")
    print("# x: ratio to sequential generate; vs: lf-ray's tok/s and p50 over --against's at the same concurrency")
    header = f"{'':24} {'req/s':>8} {'tok/s':>8} {'p50 s':>8} {'p99 s':>8} {'x req/s':>8} {'x tok/s':>8}"
    print(header + (f" {'vs tok/s':>8} {'vs p50':>8}" if other else ""))
    for name, (row, rival) in rows.items():
        ratio_req, ratio_tok = row["req_s"] / base["req_s"], row["tok_s"] / base["tok_s"]
        line = (
            f"{name:24} {row['req_s']:8.2f} {row['tok_s']:8.1f} {row['p50_s']:8.3f} {row['p99_s']:8.3f} "
            f"{ratio_req:8.2f} {ratio_tok:8.2f}"
        )
        if rival:
            line += f" {row['tok_s'] / rival['tok_s']:8.2f} {row['p50_s'] / rival['p50_s']:8.2f}"
        print(line)


if __name__ == "__main__":
    main()
