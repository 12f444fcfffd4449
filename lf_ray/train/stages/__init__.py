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
    """The trainer of the config's stage, from the module the stage table names."""
    module = importlib.import_module(STAGES[context.cfg.finetuning.stage].trainer)
    trainer = module.build_trainer(context)
    if context.cfg.finetuning.use_badam:
        from lf_ray.train.optimizers import clip_sparse_gradients

        clip_sparse_gradients(trainer)
    return trainer


__all__ = ["StageContext", "build_trainer"]
