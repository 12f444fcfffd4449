"""What a model gets before training, as LLaMA-Factory's patcher does (`prepare_model_for_training`,
`configure_moe`):

- KV cache off; gradient checkpointing unless `disable_gradient_checkpointing` (`use_reentrant_gc`), with the saved
  activations offloaded to host memory under `use_unsloth_gc` (LLaMA-Factory's "Unsloth" checkpointing is that
  offload; transformers' `activation_checkpointing_enable(offload=True)` does it);
- `upcast_layernorm`: the norm weights in float32; `upcast_lmhead_output`: the logits cast to float32 (both matter
  only when the model is loaded in half precision);
- `moe_aux_loss_coef`: the router's load-balancing loss of a mixture-of-experts model, with its coefficient.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)

LAYERNORM_NAMES = ("norm", "ln")
"""Name parts of the 1-D norm weights `upcast_layernorm` casts (LLaMA-Factory's)."""

_ROUTER_COEFFICIENTS = ("router_aux_loss_coef", "aux_loss_alpha", "aux_loss_coef")
"""Where MoE configs keep the router loss coefficient: Mixtral / Qwen-MoE / OLMoE ..., DeepSeek, JetMoE."""


def prepare_for_training(model: PreTrainedModel, cfg: LfRayConfig) -> None:
    import torch

    model.config.use_cache = False
    if cfg.model.upcast_layernorm:
        for name, param in model.named_parameters():
            if param.ndim == 1 and any(part in name for part in LAYERNORM_NAMES):
                param.data = param.data.to(torch.float32)
        logger.info("Norm weights upcast to float32.")
    if cfg.model.upcast_lmhead_output:
        head = model.get_output_embeddings()
        if isinstance(head, torch.nn.Linear) and head.weight.dtype != torch.float32:
            head.register_forward_hook(_to_float32)
            logger.info("lm_head outputs upcast to float32.")
    _enable_checkpointing(model, cfg)


def _to_float32(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    import torch

    return output.to(torch.float32)


def _enable_checkpointing(model: PreTrainedModel, cfg: LfRayConfig) -> None:
    if cfg.model.disable_gradient_checkpointing or not model.supports_gradient_checkpointing:
        return
    kwargs = {"use_reentrant": cfg.model.use_reentrant_gc}
    offload = cfg.model.use_unsloth_gc
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs, offload=offload)
    elif offload:
        raise ConfigError("`use_unsloth_gc` needs transformers' activation offloading (5.2x or newer); upgrade it")
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if cfg.finetuning.finetuning_type != "full":
        # Frozen embeddings give checkpointed blocks inputs without grad: their trainable weights would get none.
        model.enable_input_require_grads()
    if cfg.finetuning.use_badam:
        _checkpoint_from_the_trainable_block(model)
    logger.info("Gradient checkpointing on (use_reentrant=%s, offload=%s).", cfg.model.use_reentrant_gc, offload)


def _checkpoint_from_the_trainable_block(model: PreTrainedModel) -> None:
    """BAdam's callback turns the embeddings' requires-grad hook off, so backward stops at the block BAdam trains
    instead of running down to the embeddings. A checkpointed block then gets its hidden states marked as needing
    grad while it has trainable weights (else reentrant checkpointing would leave those weights without gradients),
    and runs without checkpointing when no gradient passes through it (LLaMA-Factory's checkpointing does both)."""
    import torch

    def trainable_only(block: torch.nn.Module, checkpoint: Any) -> Any:
        def run(function: Any, *args: Any, **kwargs: Any) -> Any:
            tensors = [arg for arg in args if torch.is_tensor(arg) and arg.is_floating_point()]
            if any(param.requires_grad for param in block.parameters()):
                if tensors:
                    tensors[0].requires_grad_(True)  # the hidden states come first
            elif not any(tensor.requires_grad for tensor in tensors):
                return function(*args, **kwargs)
            return checkpoint(function, *args, **kwargs)

        return run

    for module in model.modules():
        if getattr(module, "gradient_checkpointing", False) and hasattr(module, "_gradient_checkpointing_func"):
            module._gradient_checkpointing_func = trainable_only(module, module._gradient_checkpointing_func)


def configure_moe(config: PretrainedConfig, cfg: LfRayConfig) -> None:
    """`moe_aux_loss_coef`: turn the router loss on (`output_router_logits`) and set its coefficient."""
    coefficient = cfg.model.moe_aux_loss_coef
    if not coefficient:
        return
    target = config if _router_key(config) else getattr(config, "text_config", None)
    key = _router_key(target) if target is not None else None
    if key is None:
        raise ConfigError(
            f"`moe_aux_loss_coef: {coefficient}` weighs a mixture-of-experts router's loss, but "
            f"{cfg.model.model_name_or_path} ({getattr(config, 'model_type', '?')}) has no router; remove the key"
        )
    setattr(target, key, coefficient)
    if hasattr(target, "output_router_logits"):
        target.output_router_logits = True
    logger.info("MoE router loss on, %s = %g", key, coefficient)


def _router_key(config: PretrainedConfig) -> str | None:
    return next((key for key in _ROUTER_COEFFICIENTS if hasattr(config, key)), None)
