"""Stage kto: Kahneman-Tversky optimisation on answers labelled desirable or not (TRL's `KTOTrainer`).

Rows hold the answer (`input_ids`, `attention_mask`, `labels`), the desirability (`kto_tags`) and a mismatched
KL pair (`kl_*`, the same prompt with another row's answer) that the preprocess step built, as LLaMA-Factory
does; the collator hands that pair to TRL as its `KL_*` batch. `kto_chosen_weight` / `kto_rejected_weight`
are TRL's `desirable_weight` / `undesirable_weight`. The reference model is `stages.base.reference_model`.
"""

from __future__ import annotations

from trl import KTOTrainer

from lf_ray.errors import ConfigError
from lf_ray.train.collators import FeedbackCollator
from lf_ray.train.stages.base import (
    AdapterOffReference,
    PretokenizedMixin,
    StageContext,
    reference_model,
    trainer_callbacks,
)


class FeedbackTrainer(PretokenizedMixin, AdapterOffReference, KTOTrainer):
    """TRL's KTOTrainer on lf-ray's tokenized rows, which carry their own KL pair.

    TRL builds KL pairs by rotating answers within a fixed-order batch, so it insists on sequential sampling.
    Our pairs are part of each row and survive shuffling: the configured sampling is restored after TRL's check.
    """

    def __init__(self, *args, **kwargs):
        training_args = kwargs["args"]
        sampling = training_args.train_sampling_strategy
        training_args.train_sampling_strategy = "sequential"
        try:
            super().__init__(*args, **kwargs)
        finally:
            training_args.train_sampling_strategy = sampling


def build_trainer(ctx: StageContext) -> KTOTrainer:
    if ctx.training_args.per_device_train_batch_size < 2:
        raise ConfigError(
            f"`stage: kto` needs `per_device_train_batch_size` of 2 or more (got "
            f"{ctx.training_args.per_device_train_batch_size}): TRL's KTOTrainer estimates the KL term over the "
            "batch; raise it and divide `gradient_accumulation_steps` by the same factor"
        )
    collator = FeedbackCollator(pad_token_id=ctx.pad_token_id, pad_to_multiple_of=ctx.pad_to_multiple_of)
    metrics = None  # KTOTrainer logs rewards, log-probs and the KL estimate itself
    return FeedbackTrainer(
        model=ctx.model,
        ref_model=reference_model(ctx),
        args=ctx.training_args,
        data_collator=collator,
        train_dataset=ctx.train_dataset,
        eval_dataset=ctx.eval_dataset,
        processing_class=ctx.tokenizer,
        compute_metrics=metrics,
        callbacks=trainer_callbacks(ctx),
        optimizers=ctx.optimizers,
    )
