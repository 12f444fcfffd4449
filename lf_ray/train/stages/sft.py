"""Stage sft: supervised fine-tuning, next-token loss on answer tokens only (transformers' `Seq2SeqTrainer`).

Rows hold `input_ids`, `attention_mask` and `labels` (-100 on prompt tokens); packed rows add `position_ids`,
and with `neat_packing` the attention mask holds segment ids that the collator turns into a block-diagonal
mask. `compute_accuracy` adds token accuracy to evaluation.
"""

from __future__ import annotations

from transformers import Seq2SeqTrainer

from lf_ray.train.collators import SupervisedCollator
from lf_ray.train.stages.base import StageContext, trainer_callbacks
from lf_ray.train.stages.metrics import predicted_tokens, token_accuracy


def build_trainer(ctx: StageContext) -> Seq2SeqTrainer:
    collator = SupervisedCollator(
        pad_token_id=ctx.pad_token_id,
        neat_packing=ctx.cfg.data.neat_packing,
        attn_implementation=getattr(ctx.model.config, "_attn_implementation", None),
        mask_dtype=ctx.model.dtype,
        pad_to_multiple_of=8 if ctx.training_args.do_train else ctx.pad_to_multiple_of,  # LLaMA-Factory's choice
    )
    accuracy = ctx.cfg.finetuning.compute_accuracy
    return Seq2SeqTrainer(
        model=ctx.model,
        args=ctx.training_args,
        data_collator=collator,
        train_dataset=ctx.train_dataset,
        eval_dataset=ctx.eval_dataset,
        processing_class=ctx.tokenizer,
        compute_metrics=token_accuracy if accuracy else None,
        preprocess_logits_for_metrics=predicted_tokens if accuracy else None,
        callbacks=trainer_callbacks(ctx),
        optimizers=ctx.optimizers,
    )
