"""`ref_model` (+ `ref_model_adapters`, `ref_model_quantization_bit`): the explicit reference of dpo / kto / ASFT."""

from __future__ import annotations

import pytest
import torch

from lf_ray.config import prepare_config
from lf_ray.data.tokenizer_spec import tokenizer_spec
from lf_ray.errors import ConfigError
from lf_ray.model.loader import load_causal_lm
from lf_ray.model.reference import load_reference_model

IDS = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])


def make_cfg(*overrides: str):
    return prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "stage=dpo", *overrides])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def test_the_reference_is_the_base_with_its_adapters_merged_and_frozen(sft_adapter, tiny_llama_path):
    from peft import PeftModel

    cfg = make_cfg("ref_model=builtin:tiny-llama", f"ref_model_adapters={sft_adapter}")
    reference = load_reference_model(cfg, tokenizer_spec(cfg).load()[0])

    assert not isinstance(reference, PeftModel) and not reference.training
    assert not any(param.requires_grad for param in reference.parameters())
    expected = logits(PeftModel.from_pretrained(load_causal_lm(tiny_llama_path), sft_adapter).eval())
    torch.testing.assert_close(logits(reference), expected)
    assert not torch.allclose(logits(reference), logits(load_causal_lm(tiny_llama_path)))


def test_ref_model_quantization_bit_loads_the_reference_in_4_bit():
    import bitsandbytes as bnb

    cfg = make_cfg("ref_model=builtin:tiny-llama", "ref_model_quantization_bit=4")
    reference = load_reference_model(cfg, tokenizer_spec(cfg).load()[0])
    assert isinstance(reference.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert torch.isfinite(logits(reference)).all()


def test_without_ref_model_the_stage_keeps_its_own_reference():
    cfg = make_cfg()
    assert load_reference_model(cfg, tokenizer_spec(cfg).load()[0]) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["ref_model_adapters=/some/adapter"], "`ref_model_adapters` describes the reference model, but `ref_model`"),
        (["ref_model=builtin:tiny-llama", "pref_loss=orpo"], "`stage: dpo` with `pref_loss: orpo` reads none"),
        (["ref_model=builtin:tiny-llama", "stage=sft"], "`stage: sft` reads none"),
        (["ref_model=builtin:tiny-llama", "ref_model_quantization_bit=3"], "`ref_model_quantization_bit: 3`"),
    ],
)
def test_reference_keys_that_would_do_nothing_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("`", ".")):
        make_cfg(*overrides)
