"""Reward functions the grpo tests name by import path (`tests.train.grpo_rewards:<name>`), good and bad."""

from __future__ import annotations

LOW_IDS = 1024
"""The lower half of the tiny models' vocabulary (2,055 ids): a reward the tiny Llama learns in a few steps."""


def low_ids(completion_ids, **kwargs):
    """The share of a completion's tokens with ids below LOW_IDS."""
    return [sum(1 for token in ids if token < LOW_IDS) / max(1, len(ids)) for ids in completion_ids]


def seen_columns(prompts, completions, answer, input_ids, **kwargs):
    """0, after checking what GRPO hands a reward function: decoded prompts and answers, the prompt's ids."""
    assert len(prompts) == len(completions) == len(answer) == len(input_ids)
    assert all(isinstance(text, str) and text for text in prompts + answer)
    SEEN.extend(zip(prompts, answer, input_ids, strict=True))
    return [0.0] * len(completions)


SEEN: list = []


def words(completions, **kwargs):
    return ["high"] * len(completions)


def not_a_number(completions, **kwargs):
    return [float("nan")] * len(completions)


def no_keywords(completion):
    return [0.0]
