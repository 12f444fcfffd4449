"""GRPO's reward model: `reward_model` as LLaMA-Factory's PPO loads it (`create_reward_model`), for lf-ray's
sequence-classification reward models (what `stage: rm` saves).

- `reward_model_type: full`: `reward_model` is the reward model (an rm step's full output, a hub id or a
  folder), with `reward_model_adapters` merged into it when given;
- `reward_model_type: lora`: `reward_model` is an rm step's LoRA adapter on the policy's own base model
  (`model_name_or_path`), merged into a copy of it.

`reward_model_quantization_bit` quantizes it, as `quantization_bit` does the policy. It is loaded frozen, in eval
mode, on every worker, and scores `prompt + completion` (the template's ids) with its head's first logit.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)


def reward_model_config(cfg: LfRayConfig) -> LfRayConfig:
    """The config that loads the reward model: the policy's model keys with the reward model's path, adapters and
    quantization, and no finetuning but the adapters' merge."""
    ft = cfg.finetuning
    if ft.reward_model_type == "lora":
        base, adapters = cfg.model.model_name_or_path, [ft.reward_model]
    else:
        base, adapters = ft.reward_model, [ft.reward_model_adapters] if ft.reward_model_adapters else None
    changes = {"model_name_or_path": base, "adapter_name_or_path": adapters}
    model = dataclasses.replace(cfg.model, **changes, quantization_bit=ft.reward_model_quantization_bit)
    finetuning = dataclasses.replace(ft, finetuning_type="lora" if adapters else "full", create_new_adapter=False)
    return dataclasses.replace(cfg, model=model, finetuning=finetuning)


def load_reward_model(cfg: LfRayConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel | None:
    """`reward_model` loaded frozen as a sequence classifier, or None when the config names none."""
    from lf_ray.model.loading import load_model

    if not cfg.finetuning.reward_model or cfg.finetuning.reward_model_type == "api":  # api: `rewards.api_reward`
        return None
    model, _ = load_model(reward_model_config(cfg), for_training=False, task="reward", tokenizer=tokenizer)
    logger.info("Reward model (%s): %s", cfg.finetuning.reward_model_type, cfg.finetuning.reward_model)
    return model
