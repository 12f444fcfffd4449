"""`rope_scaling`: the config, the rotary embedding, the tokenizer and the export all carry the scaled length."""

from __future__ import annotations

import json

import pytest
import torch

from lf_ray.config import prepare_config
from lf_ray.export.merge import run_export
from lf_ray.model.loading import load_model

ORIGINAL = 2048  # tiny-llama's max_position_embeddings
THETA = 500000.0


def make_cfg(*overrides: str):
    return prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "finetuning_type=full", *overrides])


def inv_freq(model) -> torch.Tensor:
    return model.model.rotary_emb.inv_freq


@pytest.fixture(scope="module")
def unscaled():
    return load_model(make_cfg(), for_training=False)[0]


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("linear", {}),
        ("dynamic", {"original_max_position_embeddings": ORIGINAL}),
        ("yarn", {"original_max_position_embeddings": ORIGINAL}),
        ("llama3", {"original_max_position_embeddings": ORIGINAL, "low_freq_factor": 1.0, "high_freq_factor": 4.0}),
    ],
)
def test_cutoff_len_past_the_model_scales_rope_by_the_ceiling_ratio(kind, extra, unscaled):
    model, tokenizer = load_model(make_cfg(f"rope_scaling={kind}", "cutoff_len=5000"), for_training=True)

    expected = {"rope_theta": THETA, "rope_type": kind, "factor": 3.0, **extra}  # ceil(5000 / 2048)
    assert model.config.rope_parameters == expected
    assert model.config.max_position_embeddings == 3 * ORIGINAL
    assert tokenizer.model_max_length >= 3 * ORIGINAL
    assert model.model.rotary_emb.rope_type == kind
    if kind == "linear":  # position interpolation: every frequency divided by the factor
        torch.testing.assert_close(inv_freq(model), inv_freq(unscaled) / 3)
    elif kind != "dynamic":  # dynamic rescales at run time, past the original length
        assert not torch.allclose(inv_freq(model), inv_freq(unscaled))


def test_a_cutoff_len_the_model_fits_leaves_rope_alone(unscaled):
    model, _ = load_model(make_cfg("rope_scaling=linear", "cutoff_len=1024"), for_training=True)
    assert model.config.rope_parameters == {"rope_theta": THETA, "rope_type": "default"}
    assert model.config.max_position_embeddings == ORIGINAL
    torch.testing.assert_close(inv_freq(model), inv_freq(unscaled))


def test_the_export_keeps_the_scaling_and_reloading_it_does_not_scale_twice(tmp_path):
    out = tmp_path / "export"
    run_export(make_cfg("rope_scaling=yarn", "cutoff_len=4096", f"export_dir={out}"))

    config = json.loads((out / "config.json").read_text())
    assert config["rope_parameters"]["factor"] == 2.0 and config["max_position_embeddings"] == 4096
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] >= 4096
    again = make_cfg(f"model_name_or_path={out}", "rope_scaling=yarn", "cutoff_len=4096")
    reloaded, _ = load_model(again, for_training=False)
    assert reloaded.config.rope_parameters["factor"] == 2.0  # sized from the original 2048 positions it recorded
    assert reloaded.config.rope_parameters["original_max_position_embeddings"] == ORIGINAL


def test_vllm_gets_the_same_settings_as_hf_overrides():
    from lf_ray.serve.vllm import vllm_llm_config

    config = vllm_llm_config(make_cfg("infer_backend=vllm", "rope_scaling=yarn", "cutoff_len=8192"))
    overrides = config["engine_kwargs"]["hf_overrides"]
    assert overrides["rope_parameters"]["factor"] == 4.0 and overrides["max_position_embeddings"] == 4 * ORIGINAL
