"""The transformers engine on the tiny Qwen: batched decoding equals transformers' `generate` row by row, and every
row keeps its own adapter, stop rules, budget and seed."""

from __future__ import annotations

import torch

from lf_ray.serve.engine import GenerationRow, SamplingParams, TransformersEngine
from tests.serve.adapters import GREETING, PLAIN_ANSWER
from tests.serve.conftest import prompt


def run(engine: TransformersEngine, rows: list[GenerationRow]) -> tuple[list[str], list[list]]:
    """Joined text and the list of deltas of every row."""
    deltas: list[list] = [[] for _ in rows]
    for step in engine.generate(rows):
        for i, delta in enumerate(step):
            if delta is not None:
                deltas[i].append(delta)
    return ["".join(d.text for d in row) for row in deltas], deltas


def test_batched_greedy_equals_generate_row_by_row(service):
    engine, tokenizer = service.engine, service.tokenizer
    params = SamplingParams(max_new_tokens=12, repetition_penalty=1.3)
    prompts = [prompt(service, text) for text in ("hi", "What is the capital of France, and why?", "Tell me")]
    texts, deltas = run(engine, [GenerationRow(ids, params) for ids in prompts])
    base = engine.model.get_base_model()
    for ids, text, row in zip(prompts, texts, deltas, strict=True):
        with engine.model.disable_adapter():
            out = base.generate(
                torch.tensor([ids]),
                max_new_tokens=12,
                do_sample=False,
                repetition_penalty=1.3,
                eos_token_id=sorted(engine.stop_token_ids),
                pad_token_id=tokenizer.pad_token_id,
            )
        assert text == tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        assert row[-1].finish_reason == "length" and row[-1].completion_tokens == 12


def test_each_row_uses_its_own_adapter_in_one_batch(service):
    ids = prompt(service, "Hello!")
    greedy = SamplingParams(max_new_tokens=24)
    rows = [GenerationRow(ids, greedy, "greeter"), GenerationRow(ids, greedy, "tools"), GenerationRow(ids, greedy)]
    texts, deltas = run(service.engine, rows)
    assert texts[:2] == [GREETING, PLAIN_ANSWER]
    assert texts[2] not in (GREETING, PLAIN_ANSWER)
    assert deltas[0][-1].finish_reason == "stop"  # the template's stop token ended it
    assert deltas[0][-1].completion_tokens == len(service.tokenizer.encode(GREETING)) + 1
    assert run(service.engine, [rows[1]])[0] == [PLAIN_ANSWER]  # alone or batched: the same answer


def test_stop_strings_end_the_row_and_never_leak(service):
    ids = prompt(service, "Hello!")
    rows = [GenerationRow(ids, SamplingParams(max_new_tokens=24, stop=("second", "xyz")), "greeter")]
    texts, deltas = run(service.engine, rows)
    assert texts == ["Greetings from the "]
    assert deltas[0][-1].finish_reason == "stop"
    assert all("sec" not in d.text for d in deltas[0])


def test_seeded_sampling_is_reproducible(service):
    ids = prompt(service, "hi")

    def sample(seed: int) -> str:
        params = SamplingParams(max_new_tokens=10, do_sample=True, temperature=1.0, top_p=0.9, top_k=40, seed=seed)
        return run(service.engine, [GenerationRow(ids, params)])[0][0]

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_a_temperature_near_zero_samples_its_limit_the_greedy_answer(service):
    """1e-45 overflows every positive logit to infinity (softmax would be NaN): the greedy answer, not a crash."""
    ids = prompt(service, "What is the capital of France?")
    greedy = run(service.engine, [GenerationRow(ids, SamplingParams(max_new_tokens=8))])[0]
    cold = SamplingParams(max_new_tokens=8, do_sample=True, temperature=1e-45, seed=0)
    assert run(service.engine, [GenerationRow(ids, cold)])[0] == greedy


def test_batch_sizes_are_counted_and_adapters_unload_after_use(service):
    engine = service.engine
    before = engine.batch_sizes[3]
    steps = engine.generate([GenerationRow(prompt(service, "hi"), SamplingParams(max_new_tokens=3), "greeter")] * 3)
    next(steps)
    assert engine.batch_sizes[3] == before + 1
    engine.unload_adapter("greeter")
    assert "greeter" in engine.adapters  # in use: deferred
    list(steps)
    assert engine.adapters == ["tools"]
    service.ensure_adapter("greeter")
    assert engine.adapters == ["greeter", "tools"]
