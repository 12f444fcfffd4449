"""Load the model a step trains or runs, with its tokenizer, in the right dtype and with its finetuning type applied.

    model, tokenizer = load_model(cfg, for_training=True)                 # pt / sft / dpo / kto
    model, tokenizer = load_model(cfg, for_training=True, task="reward")  # rm: one-logit sequence classifier

LLaMA-Factory's `load_model` + its `patcher`: RoPE scaling (`model.rope`), the training preparation
(`model.preparation`: checkpointing, upcasts, MoE router loss), embeddings resized to the tokenizer
(`model.new_tokens`), then `apply_finetuning`; QLoRA's quantized loading is `model.quantization`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from lf_ray.errors import ConfigError, ModelError
from lf_ray.model.adapters import apply_finetuning, trainable_parameter_summary
from lf_ray.model.loader import hub_location, load_error, load_tokenizer, resolve_model_path
from lf_ray.model.new_tokens import add_new_tokens, new_tokens, resize_embeddings
from lf_ray.model.preparation import configure_moe, prepare_for_training
from lf_ray.model.rope import scale_rope

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)

ModelTask = Literal["causal_lm", "reward"]

_ATTN_IMPLEMENTATION = {"disabled": "eager", "sdpa": "sdpa", "fa2": "flash_attention_2", "fa3": "flash_attention_3"}
"""`flash_attn` -> transformers' `attn_implementation`; `auto` lets transformers choose."""

# --- dtype -------------------------------------------------------------------------------------------------


def _asked_precision(cfg: LfRayConfig, for_training: bool) -> tuple[str, str] | None:
    """(`bfloat16` / `float16`, the key that asked) when the config asks for half precision, else None."""
    if not for_training and cfg.model.infer_dtype != "auto":
        return None if cfg.model.infer_dtype == "float32" else (cfg.model.infer_dtype, "infer_dtype")
    if cfg.get("bf16"):
        return "bfloat16", "bf16"
    if cfg.finetuning.pure_bf16:
        return "bfloat16", "pure_bf16"
    if cfg.get("fp16"):
        return "float16", "fp16"
    return None


def choose_dtype(
    cfg: LfRayConfig,
    *,
    for_training: bool = True,
    cuda_available: bool | None = None,
    bf16_supported: bool | None = None,
) -> torch.dtype:
    """The dtype to load weights in: float32 unless the config asks for half precision and the GPU has it.

    Training reads `bf16` / `fp16` / `pure_bf16`; inference reads `infer_dtype`, or those keys when it is
    `auto`. Without CUDA the answer is float32: bf16 on a CPU without bf16 units runs about 12x slower.
    `cuda_available` / `bf16_supported` default to what torch reports (tests pass them).
    """
    import torch

    asked = _asked_precision(cfg, for_training)
    if asked is None:
        return torch.float32
    precision, key = asked
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        logger.warning(
            "`%s` asks for %s, but there is no CUDA device: loading the model in float32 instead "
            "(half precision runs much slower on a CPU, ~12x for bf16 without bf16 units). "
            "Fix: turn `%s` off for CPU runs.",
            key,
            precision,
            key,
        )
        return torch.float32
    if precision == "float16":
        return torch.float16
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if bf16_supported:
        return torch.bfloat16
    logger.warning(
        "`%s` asks for bfloat16, which this GPU does not support: loading the model in float32. "
        "Fix: use `fp16: true` for half precision on this GPU.",
        key,
    )
    return torch.float32


# --- model -------------------------------------------------------------------------------------------------


def _load_weights(cfg: LfRayConfig, task: ModelTask, dtype: torch.dtype, *, for_training: bool) -> PreTrainedModel:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from lf_ray.model.quantization import bitsandbytes_missing, quantization_kwargs

    name = cfg.model.model_name_or_path
    resolved = resolve_model_path(name, **hub_location(cfg))
    auto_cls = AutoModelForSequenceClassification if task == "reward" else AutoModelForCausalLM
    trust = cfg.model.trust_remote_code
    kwargs: dict[str, Any] = {"trust_remote_code": trust}
    attn = _ATTN_IMPLEMENTATION.get(cfg.model.flash_attn)
    if attn:
        kwargs["attn_implementation"] = attn
    if problem := bitsandbytes_missing(cfg):
        raise ModelError(problem)
    try:
        config = AutoConfig.from_pretrained(
            resolved, trust_remote_code=trust, **({"num_labels": 1} if task == "reward" else {})
        )
        scale_rope(config, cfg)
        if for_training:
            configure_moe(config, cfg)
        if cfg.model.train_from_scratch:
            return auto_cls.from_config(config, dtype=dtype, **kwargs)
        kwargs.update(quantization_kwargs(cfg, dtype, for_training=for_training))
        return auto_cls.from_pretrained(resolved, config=config, dtype=dtype, **kwargs)
    except (OSError, ValueError) as err:
        raise load_error("model", name, resolved, err) from err


def load_model(
    cfg: LfRayConfig,
    *,
    for_training: bool,
    task: ModelTask = "causal_lm",
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[Any, PreTrainedTokenizerBase]:
    """Model (with `finetuning_type` applied) and tokenizer of `cfg.model.model_name_or_path`.

    Pass `tokenizer` when the template has already adjusted it (added stop tokens): with `resize_vocab` the
    embeddings are resized to that tokenizer. Not for training, every parameter is frozen and the model is in
    eval mode; LoRA adapters of `adapter_name_or_path` are then merged into it.
    """
    if not cfg.model.model_name_or_path:
        raise ConfigError("`model_name_or_path` is not set. Fix: set it to a model folder or builtin:tiny-llama.")
    if tokenizer is None:
        tokenizer = load_tokenizer(
            cfg.model.model_name_or_path, **hub_location(cfg), trust_remote_code=cfg.model.trust_remote_code
        )
        add_new_tokens(tokenizer, new_tokens(cfg))
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_weights(cfg, task, choose_dtype(cfg, for_training=for_training), for_training=for_training)
    if task == "reward":
        model.config.pad_token_id = tokenizer.pad_token_id  # the classifier reads the last non-pad token
    if cfg.model.rope_scaling:  # the saved tokenizer shows the length the scaled model takes
        tokenizer.model_max_length = max(tokenizer.model_max_length, model.config.max_position_embeddings)
    if cfg.model.resize_vocab:
        resize_embeddings(model, tokenizer, new_tokens(cfg), seed=cfg.training.get("seed", 42))
    if for_training:
        prepare_for_training(model, cfg)
    else:
        model.config.use_cache = cfg.model.use_kv_cache
    model = apply_finetuning(model, cfg, is_trainable=for_training)
    if for_training:
        model.train()
    else:
        model.requires_grad_(False)
        model.eval()
    logger.info(trainable_parameter_summary(model))
    if cfg.model.print_param_status:
        for name, param in model.named_parameters():
            logger.info(
                "name: %s, dtype: %s, device: %s, trainable: %s", name, param.dtype, param.device, param.requires_grad
            )
    return model, tokenizer
