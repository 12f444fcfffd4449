"""The tiny model for the scoring tests, and a wrapper of it that always picks one choice letter."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def tiny_model(tiny_llama_path):
    from lf_ray.model.loader import load_causal_lm

    return load_causal_lm(tiny_llama_path).eval()


class ForcedLetterModel:
    """Wraps a real model and adds a large bonus to one token id at every position."""

    def __init__(self, model, token_id: int) -> None:
        self.model, self.token_id = model, token_id

    def parameters(self):
        return self.model.parameters()

    def __call__(self, **inputs):
        logits = self.model(**inputs).logits.clone()
        logits[..., self.token_id] += 1e4
        return SimpleNamespace(logits=logits)


@pytest.fixture
def force_letter(tiny_model, llama_tokenizer):
    """`force_letter("B")`: the tiny model, made to answer B (the letter's token as `encode` spells it alone)."""

    def make(letter: str) -> ForcedLetterModel:
        return ForcedLetterModel(tiny_model, llama_tokenizer.encode(letter, add_special_tokens=False)[-1])

    return make
