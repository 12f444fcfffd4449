"""Beam search in `lf-ray eval` predictions: `num_beams`, `length_penalty`, and `eval_num_beams` over them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.evaluate.batch_inference import GenerateBatch
from lf_ray.serve.options import check_serve_config
from lf_ray.train.arguments import build_training_arguments

PROMPTS = np.array([[5, 17, 42, 99], [7, 3, 250, 11]], dtype=object)


def predictor(*overrides: str) -> GenerateBatch:
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "max_new_tokens=6", *overrides])
    return GenerateBatch(cfg.to_dict())


def spy_on_generate(actor: GenerateBatch) -> dict:
    seen: dict = {}
    generate = actor.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return generate(**kwargs)

    actor.model.generate = spy
    return seen


@pytest.mark.parametrize(
    ("overrides", "beams"),
    [(["num_beams=3", "length_penalty=0.5"], 3), (["num_beams=3", "eval_num_beams=4"], 4)],
)
def test_predictions_are_the_models_own_beam_search(overrides, beams):
    actor = predictor("do_sample=false", *overrides)
    seen = spy_on_generate(actor)
    predicted = actor._generate(actor.model, PROMPTS)

    assert seen["num_beams"] == beams
    ids = torch.tensor([list(row) for row in PROMPTS])
    expected = actor.model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=beams, do_sample=False, max_new_tokens=6,
        length_penalty=seen["length_penalty"], eos_token_id=seen["eos_token_id"], pad_token_id=seen["pad_token_id"],
    )  # fmt: skip
    texts = actor.tokenizer.batch_decode(expected[:, ids.shape[1] :], skip_special_tokens=True)
    assert list(predicted) == [text.strip() for text in texts]


def test_eval_num_beams_sets_the_trainers_generation_beams():
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "eval_num_beams=4"])
    assert build_training_arguments(cfg, output_dir="/tmp/lfr-beams").generation_num_beams == 4


def test_serving_refuses_beams():
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "num_beams=2"])
    with pytest.raises(ConfigError, match="`num_beams: 2`: the serving engines decode one sequence per request"):
        check_serve_config(cfg)
