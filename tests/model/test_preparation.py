"""The training preparation: upcasts, offloaded checkpointing, the MoE router loss, and GPU-only keys on CPUs."""

from __future__ import annotations

import functools

import pytest
import torch

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.model.loader import load_causal_lm
from lf_ray.model.loading import load_model
from lf_ray.model.preparation import prepare_for_training
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.launcher import check_model_fits_finetuning, training_problems

IDS = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])


def make_cfg(*overrides: str, model: str = "builtin:tiny-llama"):
    return prepare_config(None, [f"model_name_or_path={model}", "finetuning_type=full", *overrides])


def test_upcast_layernorm_casts_only_the_norm_weights(tiny_llama_path):
    model = load_causal_lm(tiny_llama_path).to(torch.bfloat16)
    prepare_for_training(model, make_cfg("upcast_layernorm=true"))
    dtypes = {name: param.dtype for name, param in model.named_parameters()}
    assert dtypes["model.norm.weight"] == dtypes["model.layers.0.input_layernorm.weight"] == torch.float32
    assert dtypes["model.layers.0.self_attn.q_proj.weight"] == dtypes["lm_head.weight"] == torch.bfloat16


def test_upcast_lmhead_output_gives_float32_logits(tiny_llama_path):
    model = load_causal_lm(tiny_llama_path).to(torch.bfloat16)
    assert model(IDS).logits.dtype == torch.bfloat16
    prepare_for_training(model, make_cfg("upcast_lmhead_output=true"))
    assert model(IDS).logits.dtype == torch.float32


def gradients(cfg) -> dict[str, torch.Tensor]:
    model, _ = load_model(cfg, for_training=True)
    model(input_ids=IDS, labels=IDS).loss.backward()
    return {name: param.grad for name, param in model.named_parameters()}


def test_use_unsloth_gc_offloads_the_checkpointed_activations_with_the_same_gradients(monkeypatch):
    import transformers.modeling_utils

    model, _ = load_model(make_cfg("use_unsloth_gc=true"), for_training=True)
    functions = {m._gradient_checkpointing_func for m in model.modules() if hasattr(m, "_gradient_checkpointing_func")}
    assert {f.func.__name__ for f in functions} == {"checkpoint_func"}  # transformers' offloading wrapper
    # On a GPU the saved activations go to pinned host memory; this machine has no pinned allocator.
    unpinned = functools.partial(torch.autograd.graph.save_on_cpu, pin_memory=False)
    monkeypatch.setattr(transformers.modeling_utils, "save_on_cpu", lambda **kwargs: unpinned(device_type="cpu"))
    offloaded, plain = gradients(make_cfg("use_unsloth_gc=true")), gradients(make_cfg())
    for name, grad in plain.items():
        torch.testing.assert_close(offloaded[name], grad)


@pytest.fixture(scope="module")
def tiny_mixtral(tmp_path_factory) -> str:
    """A two-expert Mixtral with random weights and tiny-llama's vocabulary size (its tokenizer is reused)."""
    from transformers import MixtralConfig, MixtralForCausalLM

    from lf_ray.model.loader import resolve_model_path

    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=2048, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=2, num_experts_per_tok=1,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("tiny-mixtral")
    MixtralForCausalLM(config).save_pretrained(path)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny-llama")).save_pretrained(path)
    return str(path)


def test_moe_aux_loss_coef_adds_the_router_loss_to_the_training_loss(tiny_mixtral):
    model, _ = load_model(make_cfg("moe_aux_loss_coef=0.5", model=tiny_mixtral), for_training=True)
    assert model.config.router_aux_loss_coef == 0.5 and model.config.output_router_logits is True

    outputs = model(input_ids=IDS, labels=IDS)
    plain = load_causal_lm(tiny_mixtral)(input_ids=IDS, labels=IDS)
    assert outputs.aux_loss is not None and outputs.aux_loss.item() > 0
    torch.testing.assert_close(outputs.loss, plain.loss + 0.5 * outputs.aux_loss)


def test_moe_aux_loss_coef_on_a_model_without_a_router_is_refused_before_training():
    with pytest.raises(ConfigError, match=r"`moe_aux_loss_coef: 0.1` weighs .* \(llama\) has no router"):
        check_model_fits_finetuning(make_cfg("moe_aux_loss_coef=0.1"))


@pytest.mark.parametrize("key", ["enable_liger_kernel", "use_unsloth_gc"])
def test_gpu_only_keys_are_refused_when_the_workers_train_on_cpus(key):
    cfg = make_cfg(f"{key}=true", "output_dir=/tmp/lfr-gpu-only", 'resources_per_worker={"CPU": 1}')
    (problem,) = [p for p in training_problems(cfg) if "CUDA GPUs" in p]
    assert problem.startswith(f"`{key}` speed up training on CUDA GPUs, but the workers of this run train on CPUs")


def test_enable_liger_kernel_is_transformers_use_liger_kernel():
    args = build_training_arguments(make_cfg("enable_liger_kernel=true"), output_dir="/tmp/lfr-liger")
    assert args.use_liger_kernel is True
