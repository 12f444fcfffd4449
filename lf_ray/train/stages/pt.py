"""Stage pt: continued pre-training, next-token loss on every token (transformers' `Trainer`).

Rows hold `input_ids` and `attention_mask` (usually packed into blocks of cutoff_len); the collator makes the
labels.
"""

from __future__ import annotations

from transformers import Trainer

from lf_ray.train.collators import PretrainCollator
from lf_ray.train.stages.base import StageContext, trainer_callbacks


def build_trainer(ctx: StageContext) -> Trainer:
    collator = PretrainCollator(pad_token_id=ctx.pad_token_id, pad_to_multiple_of=ctx.pad_to_multiple_of)
    metrics = None  # eval loss (and perplexity from it) is all pt reports
    return Trainer(
        model=ctx.model,
        args=ctx.training_args,
        data_collator=collator,
        train_dataset=ctx.train_dataset,
        eval_dataset=ctx.eval_dataset,
        processing_class=ctx.tokenizer,
        compute_metrics=metrics,
        callbacks=trainer_callbacks(ctx),
        optimizers=ctx.optimizers,
    )
