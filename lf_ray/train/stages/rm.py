"""Stage rm: a reward model, `-log sigmoid(r_chosen - r_rejected)` on preference pairs (TRL's `RewardTrainer`).

The model is a sequence-classification model with one output (`num_labels=1`); its score of a sequence is
the reward. Rows hold LLaMA-Factory's pairwise columns (`chosen_input_ids`, ..., `rejected_labels`); TRL's
RewardTrainer logs the reward accuracy (chosen scored above rejected) and margin, in training and evaluation.
"""

from __future__ import annotations

from trl import RewardTrainer

from lf_ray.train.collators import PairwiseCollator
from lf_ray.train.stages.base import PretokenizedMixin, StageContext, trainer_callbacks


class PairwiseRewardTrainer(PretokenizedMixin, RewardTrainer):
    """TRL's RewardTrainer on lf-ray's tokenized pairs."""


def build_trainer(ctx: StageContext) -> RewardTrainer:
    collator = PairwiseCollator(
        pad_token_id=ctx.pad_token_id, completion_mask=False, pad_to_multiple_of=ctx.pad_to_multiple_of
    )
    metrics = None  # RewardTrainer logs accuracy, margin and reward range itself
    return PairwiseRewardTrainer(
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
