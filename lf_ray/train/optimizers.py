"""Optimizers the trainer cannot build from `optim` alone, as LLaMA-Factory's `create_custom_optimizer`:
LoRA+ (lora_B's learning-rate ratio) and Adam-mini (it needs the model's attention layout). Otherwise None, and the
trainer builds the one `optim` names (GaLore and APOLLO included: `arguments.low_rank_optimizer`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, TrainingArguments

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)


def custom_optimizer(
    model: PreTrainedModel, training_args: TrainingArguments, cfg: LfRayConfig
) -> torch.optim.Optimizer | None:
    if cfg.finetuning.loraplus_lr_ratio is not None:
        from lf_ray.model.adapters import create_loraplus_optimizer

        return create_loraplus_optimizer(model, training_args, cfg)
    if cfg.finetuning.use_adam_mini:
        return adam_mini_optimizer(model, training_args)
    return None


def adam_mini_optimizer(model: PreTrainedModel, training_args: TrainingArguments) -> torch.optim.Optimizer:
    """Adam-mini (arXiv 2406.16793): one second-moment value per block (per attention head, per neuron), laid out
    from the model's hidden size and query / key-value heads; betas, eps and weight decay from the arguments."""
    from adam_mini import Adam_mini
    from transformers.integrations import is_deepspeed_zero3_enabled

    config = model.config
    logger.info("Using the Adam-mini optimizer")
    return Adam_mini(
        named_parameters=model.named_parameters(),
        lr=training_args.learning_rate,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        weight_decay=training_args.weight_decay,
        model_sharding=is_deepspeed_zero3_enabled(),
        dim=config.hidden_size,
        n_heads=config.num_attention_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None),
        verbose=False,
    )
