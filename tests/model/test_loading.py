"""load_model and choose_dtype on the builtin tiny models."""

from __future__ import annotations

import logging

import pytest
import torch

from lf_ray.config import prepare_config
from lf_ray.errors import ModelError
from lf_ray.model.adapters import count_parameters
from lf_ray.model.loader import load_tokenizer
from lf_ray.model.loading import choose_dtype, load_model

BATCH = torch.tensor([[5, 17, 42, 99, 7, 3], [8, 21, 64, 2054, 2054, 2054]])  # 2054: tiny-llama's pad id


def make_cfg(*overrides: str, model: str = "builtin:tiny-llama"):
    return prepare_config(None, [f"model_name_or_path={model}", *overrides])


# --- choose_dtype -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "for_training", "cuda", "bf16_ok", "expected"),
    [
        ([], True, True, True, torch.float32),  # nothing asked: fp32 even on a GPU
        (["bf16=true"], True, True, True, torch.bfloat16),
        (["pure_bf16=true"], True, True, True, torch.bfloat16),
        (["fp16=true"], True, True, False, torch.float16),
        (["bf16=true"], True, True, False, torch.float32),  # GPU without bf16
        (["bf16=true"], True, False, False, torch.float32),  # CPU
        (["fp16=true"], True, False, False, torch.float32),
        (["infer_dtype=bfloat16"], True, True, True, torch.float32),  # infer_dtype is for inference only
        (["infer_dtype=bfloat16"], False, True, True, torch.bfloat16),
        (["infer_dtype=float16"], False, True, True, torch.float16),
        (["infer_dtype=float32", "bf16=true"], False, True, True, torch.float32),  # explicit infer_dtype wins
        (["bf16=true"], False, True, True, torch.bfloat16),  # infer_dtype auto: the training keys
        (["infer_dtype=bfloat16"], False, False, False, torch.float32),
    ],
)
def test_choose_dtype(overrides, for_training, cuda, bf16_ok, expected):
    cfg = make_cfg(*overrides)
    assert choose_dtype(cfg, for_training=for_training, cuda_available=cuda, bf16_supported=bf16_ok) == expected


def test_bf16_on_cpu_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="lf_ray.model.loading"):
        assert choose_dtype(make_cfg("bf16=true"), cuda_available=False) == torch.float32
    assert caplog.messages == [
        "`bf16` asks for bfloat16, but there is no CUDA device: loading the model in float32 instead "
        "(half precision runs much slower on a CPU, ~12x for bf16 without bf16 units). "
        "Fix: turn `bf16` off for CPU runs."
    ]


def test_bf16_on_a_gpu_without_it_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="lf_ray.model.loading"):
        choose_dtype(make_cfg("bf16=true"), cuda_available=True, bf16_supported=False)
    assert "Fix: use `fp16: true` for half precision on this GPU." in caplog.text


def test_choose_dtype_on_this_machine_is_float32_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU fallback")
    assert choose_dtype(make_cfg("bf16=true")) == torch.float32


# --- load_model ---------------------------------------------------------------------------------------------


def test_lora_training_model_is_checkpointed_and_gets_gradients():
    model, tokenizer = load_model(make_cfg(), for_training=True)

    assert type(model).__name__ == "PeftModelForCausalLM"
    assert len(tokenizer) == 2055 and tokenizer.pad_token_id == 2054
    assert model.training
    assert model.config.use_cache is False
    assert model.base_model.model.is_activation_checkpointing
    assert count_parameters(model)[0] == 32_768
    model(input_ids=BATCH, labels=BATCH).loss.backward()
    # reentrant checkpointing gives trainable weights gradients only because the inputs require grad
    lora_b = [p for name, p in model.named_parameters() if ".lora_B." in name]
    assert len(lora_b) == 14 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)


def test_freeze_training_gets_gradients_through_checkpointing():
    model, _ = load_model(make_cfg("finetuning_type=freeze", "freeze_trainable_layers=1"), for_training=True)

    model(input_ids=BATCH, labels=BATCH).loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert len(grads) == 9  # every weight of layer 1
    assert all(grad is not None and grad.abs().sum() > 0 for grad in grads.values())


def test_disable_gradient_checkpointing():
    model, _ = load_model(make_cfg("disable_gradient_checkpointing=true"), for_training=True)
    assert not model.base_model.model.is_activation_checkpointing


def test_inference_model_is_frozen_and_caches():
    model, _ = load_model(make_cfg(), for_training=False)

    assert type(model).__name__ == "LlamaForCausalLM"  # LoRA without adapters: nothing to add
    assert not model.training
    assert model.config.use_cache is True
    assert count_parameters(model)[0] == 0


def test_inference_dtype_follows_infer_dtype_only_on_gpu():
    model, _ = load_model(make_cfg("infer_dtype=bfloat16"), for_training=False)
    expected = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    assert {p.dtype for p in model.parameters()} == {expected}


def test_reward_model_has_one_logit_and_a_trainable_score_head():
    model, tokenizer = load_model(make_cfg("stage=rm"), for_training=True, task="reward")

    base = model.base_model.model
    assert type(base).__name__ == "LlamaForSequenceClassification"
    assert base.config.num_labels == 1
    assert base.config.pad_token_id == tokenizer.pad_token_id == 2054
    assert "base_model.model.score.modules_to_save.default.weight" in {
        name for name, p in model.named_parameters() if p.requires_grad
    }
    rewards = model(input_ids=BATCH).logits
    assert rewards.shape == (2, 1)
    rewards.sum().backward()
    assert model.base_model.model.score.modules_to_save["default"].weight.grad.abs().sum() > 0


def test_reward_model_reads_the_last_real_token():
    """Padding after the answer must not change its reward: the classifier uses pad_token_id to find the end."""
    model, _ = load_model(make_cfg("stage=rm"), for_training=False, task="reward")
    short = torch.tensor([[8, 21, 64]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=short).logits[0], model(input_ids=BATCH).logits[1])


def test_resize_vocab_grows_the_embeddings_and_trains_them():
    tokenizer = load_tokenizer("builtin:tiny-llama")
    assert tokenizer.add_tokens(["<tool_a>", "<tool_b>", "<tool_c>"]) == 3

    model, returned = load_model(make_cfg("resize_vocab=true"), for_training=True, tokenizer=tokenizer)

    assert returned is tokenizer and len(tokenizer) == 2058
    base = model.base_model.model
    assert base.get_input_embeddings().weight.shape == (2112, 128)  # 2058 padded up to a multiple of 64
    assert base.get_output_embeddings().weight.shape == (2112, 128)
    assert set(model.peft_config["default"].modules_to_save) == {"embed_tokens", "lm_head"}


def test_tiny_qwen_with_lora_on_all_linear_layers():
    model, tokenizer = load_model(make_cfg(model="builtin:tiny-qwen"), for_training=True)

    config = model.base_model.model.config
    assert config.tie_word_embeddings
    h, i = config.hidden_size, config.intermediate_size
    kv = config.num_key_value_heads * h // config.num_attention_heads  # Qwen2 configs have no head_dim
    per_layer = 8 * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))
    assert count_parameters(model)[0] == config.num_hidden_layers * per_layer
    ids = tokenizer("hello world", return_tensors="pt").input_ids
    assert torch.isfinite(model(input_ids=ids, labels=ids).loss)


def test_full_training_loads_every_parameter_trainable():
    model, _ = load_model(make_cfg("finetuning_type=full"), for_training=True)
    trainable, total = count_parameters(model)
    assert trainable == total == 821_632
    assert model.is_activation_checkpointing


def test_train_from_scratch_reinitialises_the_weights():
    pretrained, _ = load_model(make_cfg("finetuning_type=full"), for_training=False)
    torch.manual_seed(123)
    scratch, _ = load_model(make_cfg("finetuning_type=full", "train_from_scratch=true"), for_training=False)

    assert scratch.config.vocab_size == pretrained.config.vocab_size
    assert not torch.equal(scratch.model.embed_tokens.weight, pretrained.model.embed_tokens.weight)


def test_flash_attn_disabled_selects_eager_attention():
    model, _ = load_model(make_cfg("flash_attn=disabled"), for_training=False)
    assert model.config._attn_implementation == "eager"


def test_trust_remote_code_reaches_transformers(monkeypatch):
    from transformers import AutoModelForCausalLM

    seen = {}
    original = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    load_model(make_cfg("trust_remote_code=true"), for_training=False)
    assert seen["trust_remote_code"] is True


def test_missing_model_folder_is_a_model_error(tmp_path):
    missing = tmp_path / "no-model"
    with pytest.raises(ModelError, match=r"Model folder .*no-model' does not exist .* Fix: check the path"):
        load_model(make_cfg(model=str(missing)), for_training=True)


@pytest.mark.parametrize("reentrant", [True, False])
def test_use_reentrant_gc_reaches_the_checkpointed_layers(reentrant):
    model, _ = load_model(make_cfg(f"use_reentrant_gc={str(reentrant).lower()}"), for_training=True)
    checkpointed = [m for m in model.modules() if hasattr(m, "_gradient_checkpointing_func")]
    assert checkpointed and {m._gradient_checkpointing_func.keywords["use_reentrant"] for m in checkpointed} == {
        reentrant
    }


def test_use_kv_cache_off_for_inference():
    model, _ = load_model(make_cfg("use_kv_cache=false"), for_training=False)
    assert model.config.use_cache is False


def test_print_param_status_logs_every_parameter(caplog):
    with caplog.at_level(logging.INFO, logger="lf_ray.model.loading"):
        model, _ = load_model(make_cfg("print_param_status=true"), for_training=False)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("name: ")]
    assert len(logged) == len(list(model.named_parameters()))
    assert logged[0].startswith("name: model.embed_tokens.weight, dtype: torch.float32, device: cpu, trainable: False")
