"""Stage sft: supervised fine-tuning, next-token loss on answer tokens only (transformers' `Seq2SeqTrainer`).

Rows hold `input_ids`, `attention_mask` and `labels` (-100 on prompt tokens); packed rows add `position_ids`,
and with `neat_packing` the attention mask holds segment ids that the collator turns into a block-diagonal
mask. `compute_accuracy` adds token accuracy to evaluation. `use_dft_loss`, `use_eaft_loss` and `use_asft_loss`
swap the cross-entropy for LLaMA-Factory's variants (`sft_losses`).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Seq2SeqTrainer

from lf_ray.constants import IGNORE_INDEX
from lf_ray.errors import ConfigError
from lf_ray.train.collators import SupervisedCollator
from lf_ray.train.stages.base import StageContext, reference_model, trainer_callbacks
from lf_ray.train.stages.metrics import predicted_tokens, token_accuracy
from lf_ray.train.stages.sft_losses import asft_loss, loss_function


class AnchoredTrainer(Seq2SeqTrainer):
    """ASFT: the DFT loss plus `alpha` x KL(reference || model); the reference is a frozen model, or (None) the
    policy with its LoRA adapter switched off."""

    loss_is_scaled_for_ga = False  # a mean over the micro-batch: the trainer divides by the accumulation steps

    def __init__(self, *args: Any, reference: Any, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.reference = None if reference is None else self._prepare_reference(reference)

    def _prepare_reference(self, reference: Any) -> Any:
        if self.is_deepspeed_enabled:
            from trl.models.utils import prepare_deepspeed

            return prepare_deepspeed(reference, self.accelerator)
        return self.accelerator.prepare_model(reference, evaluation_mode=True)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forward = {key: value for key, value in inputs.items() if key != "labels"}
        outputs = model(**forward)
        with torch.no_grad():
            reference_logits = self._reference_logits(model, forward)
        loss = asft_loss(outputs.logits, reference_logits, inputs["labels"], self.alpha)
        return (loss, outputs) if return_outputs else loss

    def _reference_logits(self, model: Any, forward: dict[str, Any]) -> torch.Tensor:
        if self.reference is not None:
            return self.reference(**forward).logits
        policy = self.accelerator.unwrap_model(model)
        with policy.disable_adapter():
            return policy(**forward).logits


def build_trainer(ctx: StageContext) -> Seq2SeqTrainer:
    collator = SupervisedCollator(
        pad_token_id=ctx.pad_token_id,
        neat_packing=ctx.cfg.data.neat_packing,
        attn_implementation=getattr(ctx.model.config, "_attn_implementation", None),
        mask_dtype=ctx.model.dtype,
        pad_to_multiple_of=8 if ctx.training_args.do_train else ctx.pad_to_multiple_of,  # LLaMA-Factory's choice
        label_pad_token_id=IGNORE_INDEX if ctx.cfg.data.ignore_pad_token_for_loss else ctx.pad_token_id,
    )
    accuracy = ctx.cfg.finetuning.compute_accuracy
    common = {
        "model": ctx.model,
        "args": ctx.training_args,
        "data_collator": collator,
        "train_dataset": ctx.train_dataset,
        "eval_dataset": ctx.eval_dataset,
        "processing_class": ctx.tokenizer,
        "compute_metrics": token_accuracy if accuracy else None,
        "preprocess_logits_for_metrics": predicted_tokens if accuracy else None,
        "callbacks": trainer_callbacks(ctx),
        "optimizers": ctx.optimizers,
    }
    if ctx.cfg.finetuning.use_asft_loss:
        return AnchoredTrainer(reference=_asft_reference(ctx), alpha=ctx.cfg.finetuning.asft_alpha, **common)
    return Seq2SeqTrainer(compute_loss_func=loss_function(ctx.cfg), **common)


def _asft_reference(ctx: StageContext) -> Any:
    from peft import PeftModel

    reference = reference_model(ctx)
    if reference is None and not isinstance(ctx.model, PeftModel):  # DeepSpeed ZeRO-3 shards the model
        raise ConfigError(
            "`use_asft_loss` under DeepSpeed ZeRO-3 with full or freeze tuning needs an explicit reference: "
            "set `ref_model` (e.g. the model_name_or_path you start from)"
        )
    return reference
