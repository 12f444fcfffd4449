"""The explicit reference model of dpo / kto (and of sft with `use_asft_loss`): `ref_model`, its adapters
(`ref_model_adapters`, merged into it) and `ref_model_quantization_bit`, as LLaMA-Factory's `create_ref_model`.

Without `ref_model` the stages keep LLaMA-Factory's default reference (`train.stages.base.reference_model`): the
policy with its adapter switched off under LoRA, else a frozen copy of its starting weights. An explicit reference
matters when training continues from an earlier adapter: in a pipeline `sft → dpo`, dpo's adapter-off policy is
the base model, while `ref_model: ${steps.sft.outputs.base_model}` with `ref_model_adapters:
${steps.sft.outputs.adapters}` makes the reference the SFT model, which is what DPO's loss assumes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)


def wants_reference(cfg: LfRayConfig) -> bool:
    """Whether the stage reads a reference model: dpo (but ORPO / SimPO), kto, ppo, and sft with the ASFT loss."""
    ft = cfg.finetuning
    return ft.use_ref_model or ft.stage in ("kto", "ppo") or (ft.stage == "sft" and ft.use_asft_loss)


def reference_config(cfg: LfRayConfig) -> LfRayConfig:
    """The config that loads `ref_model`: the policy's model keys (template tokens, dtype, attention) with the
    reference's path, adapters and quantization, and no finetuning but the adapters' merge."""
    ft = cfg.finetuning
    adapters = ft.ref_model_adapters or None
    model = dataclasses.replace(
        cfg.model,
        model_name_or_path=ft.ref_model,
        adapter_name_or_path=adapters,
        quantization_bit=ft.ref_model_quantization_bit,
    )
    finetuning = dataclasses.replace(ft, finetuning_type="lora" if adapters else "full", create_new_adapter=False)
    return dataclasses.replace(cfg, model=model, finetuning=finetuning)


def load_reference_model(cfg: LfRayConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel | None:
    """`ref_model` loaded frozen for the stage's trainer, or None for the stage's default reference."""
    from lf_ray.model.loading import load_model

    if not (cfg.finetuning.ref_model and wants_reference(cfg)):
        return None
    model, _ = load_model(reference_config(cfg), for_training=False, tokenizer=tokenizer)
    logger.info("Reference model: %s with adapters %s", cfg.finetuning.ref_model, cfg.finetuning.ref_model_adapters)
    return model
