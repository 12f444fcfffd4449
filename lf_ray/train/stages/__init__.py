"""One module per stage, each exposing `build_trainer(ctx: StageContext) -> transformers.Trainer`.

They read alike on purpose: collator → metrics → trainer; only the trainer and the collator differ. The stage
table (`lf_ray.stages.STAGES`) names each stage's module.

    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, train_dataset))
    trainer.train()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lf_ray.stages import STAGES
from lf_ray.train.stages.base import StageContext

if TYPE_CHECKING:
    from transformers import Trainer


def build_trainer(context: StageContext) -> Trainer:
    """The trainer of the config's stage, from the module the stage table names, stopping at `max_steps` when
    resumed there (`never_past_max_steps`)."""
    module = importlib.import_module(STAGES[context.cfg.finetuning.stage].trainer)
    trainer = never_past_max_steps(module.build_trainer(context))
    if context.cfg.finetuning.use_badam:
        from lf_ray.train.optimizers import clip_sparse_gradients

        clip_sparse_gradients(trainer)
    return trainer


def never_past_max_steps(trainer: Trainer) -> Trainer:
    """`trainer`, trained no further when resumed from a checkpoint taken at `max_steps`.

    transformers resumes such a run mid-epoch and takes one more optimizer step before it checks the limit: a
    restarted or re-run Ray Train group whose last checkpoint was the final one would train step max_steps + 1.
    """
    base = trainer.__class__

    class StopsAtMaxSteps(base):  # type: ignore[misc, valid-type]
        def _run_epoch(self, *args, **kwargs):
            if 0 < self.state.max_steps <= self.state.global_step:
                self.control.should_training_stop = True
                return None
            return super()._run_epoch(*args, **kwargs)

    StopsAtMaxSteps.__name__ = base.__name__
    trainer.__class__ = StopsAtMaxSteps
    return trainer


__all__ = ["StageContext", "build_trainer"]
