"""Continuous batching on the tiny Qwen, without Ray: requests join a running decode at its next step, leave when
they finish or are cancelled, and every row's greedy output equals the row decoded alone."""

from __future__ import annotations

import threading

import pytest

from lf_ray.serve.continuous import FINISHED, ContinuousBatcher
from lf_ray.serve.engine import GenerationRow, SamplingParams
from lf_ray.serve.service import ChatService
from tests.serve.adapters import GREETING, PLAIN_ANSWER
from tests.serve.conftest import prompt


@pytest.fixture
def batcher(service):
    batcher = ContinuousBatcher(service.engine, max_batch_size=8)
    yield batcher
    batcher.close()


class Collector:
    """Receives one request's deliveries; `log` (shared) records (request name, event) in arrival order."""

    def __init__(self, name: str, rows: int, log: list, on_step=None) -> None:
        self.name, self.log, self.on_step = name, log, on_step
        self.texts = [""] * rows
        self.finish = [None] * rows
        self.steps = 0
        self.error: BaseException | None = None
        self.done = threading.Event()

    def __call__(self, item) -> None:
        if item is FINISHED or isinstance(item, BaseException):
            self.error = item if item is not FINISHED else None
            self.log.append((self.name, "end"))
            self.done.set()
            return
        self.steps += 1
        self.log.append((self.name, "step"))
        for i, delta in enumerate(item):
            if delta is not None:
                self.texts[i] += delta.text
                self.finish[i] = delta.finish_reason or self.finish[i]
        if self.on_step:
            self.on_step(self.steps)


def alone(service: ChatService, row: GenerationRow) -> str:
    return "".join(step[0].text for step in service.engine.generate([row]) if step[0] is not None)


def test_a_request_joins_a_running_decode_and_outputs_equal_decoding_alone(service, batcher):
    """B (short prompt, adapter) arrives while A (long prompt, base) decodes; C (adapter) while both do."""
    greedy = SamplingParams(max_new_tokens=20)
    a = GenerationRow(prompt(service, "Tell me a long story about the capital of France, and why it matters"), greedy)
    b = GenerationRow(prompt(service, "Hello!"), SamplingParams(max_new_tokens=24), "greeter")
    c = GenerationRow(prompt(service, "Hello!"), SamplingParams(max_new_tokens=24), "tools")
    log: list = []
    got_b, got_c = Collector("b", 1, log), Collector("c", 1, log)

    def after_a_step(step: int) -> None:  # runs on the decoding thread: B and C are queued between steps
        if step == 2:
            batcher.submit([b], got_b)
        if step == 4:
            batcher.submit([c], got_c)

    got_a = Collector("a", 1, log, after_a_step)
    joined = service.engine.joined_running
    batcher.submit([a], got_a)
    for got in (got_a, got_b, got_c):
        assert got.done.wait(60) and got.error is None
    assert service.engine.joined_running == joined + 2
    assert log.index(("b", "step")) < log.index(("a", "end"))  # B started before A finished
    assert log[:3] == [("a", "step"), ("a", "step"), ("a", "step")]  # B's first token came with A's third
    assert log[3] == ("b", "step")
    assert got_b.texts == [GREETING] and got_c.texts == [PLAIN_ANSWER]
    assert got_a.texts == [alone(service, a)] and got_a.finish == ["length"]
    assert got_b.texts == [alone(service, b)] and got_b.finish == ["stop"]


def test_n_rows_of_one_request_step_together_and_budgets_hold(service, batcher):
    rows = [GenerationRow(prompt(service, "hi"), SamplingParams(max_new_tokens=n)) for n in (3, 7)]
    got = Collector("n", 2, [])
    batcher.submit(rows, got)
    assert got.done.wait(60) and got.error is None
    assert got.steps == 7 and got.finish == ["length", "length"]
    assert got.texts == [alone(service, rows[0]), alone(service, rows[1])]


def test_a_cancelled_request_leaves_and_the_others_go_on(service, batcher):
    long = GenerationRow(prompt(service, "Tell me"), SamplingParams(max_new_tokens=40))
    short = GenerationRow(prompt(service, "hi"), SamplingParams(max_new_tokens=12))
    log: list = []
    got_short = Collector("short", 1, log)
    holder: dict = {}

    def cancel_at(step: int) -> None:
        if step == 3:
            batcher.cancel(holder["long"])

    got_long = Collector("long", 1, log, cancel_at)
    holder["long"] = batcher.submit([long], got_long)
    batcher.submit([short], got_short)
    assert got_short.done.wait(60) and got_short.error is None
    assert got_short.texts == [alone(service, short)]
    assert got_long.steps == 3 and not got_long.done.is_set()  # nothing after the cancel, not even "end"


def test_max_batch_size_makes_a_request_wait_for_room(service):
    batcher = ContinuousBatcher(service.engine, max_batch_size=2)
    try:
        log: list = []
        rows = [GenerationRow(prompt(service, "hi"), SamplingParams(max_new_tokens=n)) for n in (2, 6, 6)]
        collectors = [Collector(str(i), 1, log) for i in range(3)]
        for row, got in zip(rows, collectors, strict=True):
            batcher.submit([row], got)
        for got in collectors:
            assert got.done.wait(60) and got.error is None
        # the third joined only when the first had left: its first step came after the first's end
        assert log.index(("2", "step")) > log.index(("0", "end"))
        assert collectors[2].texts == [alone(service, rows[2])]
    finally:
        batcher.close()


def test_a_failing_prefill_fails_only_its_request(service, batcher):
    vocab = service.engine.model.get_input_embeddings().weight.shape[0]
    log: list = []
    steady = GenerationRow(prompt(service, "hi"), SamplingParams(max_new_tokens=8))
    broken = GenerationRow([vocab + 5], SamplingParams(max_new_tokens=4))  # an id past the embedding table
    got_broken = Collector("broken", 1, log)

    def add_broken(step: int) -> None:
        if step == 2:
            batcher.submit([broken], got_broken)

    got_steady = Collector("steady", 1, log, add_broken)
    batcher.submit([steady], got_steady)
    assert got_broken.done.wait(60) and isinstance(got_broken.error, IndexError)
    assert got_steady.done.wait(60) and got_steady.error is None
    assert got_steady.texts == [alone(service, steady)]


def test_a_failing_step_fails_every_request_in_the_batch_and_the_next_ones_are_served(service, batcher, monkeypatch):
    engine = service.engine
    forward, calls = engine._forward, []

    def failing_fourth_pass(*args):  # 1: A's prefill, 2: A's step, 3: B's prefill, 4: the step of A and B
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("device lost")
        return forward(*args)

    monkeypatch.setattr(engine, "_forward", failing_fourth_pass)
    log: list = []
    greedy = SamplingParams(max_new_tokens=10)
    got_b = Collector("b", 1, log)
    got_a = Collector("a", 1, log, lambda step: step == 1 and batcher.submit([GenerationRow([1, 2, 3], greedy)], got_b))
    batcher.submit([GenerationRow(prompt(service, "hi"), greedy)], got_a)
    for got in (got_a, got_b):
        assert got.done.wait(60) and isinstance(got.error, RuntimeError) and str(got.error) == "device lost"
    after = GenerationRow(prompt(service, "Hello!"), SamplingParams(max_new_tokens=6))
    got_after = Collector("after", 1, log)
    batcher.submit([after], got_after)
    assert got_after.done.wait(60) and got_after.error is None
    assert got_after.texts == [alone(service, after)]
    assert engine.adapters_in_use.total() == 0
