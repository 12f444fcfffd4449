"""One module per stage, each exposing `build_trainer(ctx: StageContext) -> transformers.Trainer`.

They read alike on purpose: collator → metrics → trainer; only the trainer and the collator differ.

    trainer = STAGES[cfg.finetuning.stage](StageContext(cfg, model, tokenizer, args, train_dataset))
    trainer.train()
"""

from __future__ import annotations

from collections.abc import Callable

from transformers import Trainer

from lf_ray.train.stages import dpo, kto, pt, rm, sft
from lf_ray.train.stages.base import StageContext

STAGES: dict[str, Callable[[StageContext], Trainer]] = {
    "pt": pt.build_trainer,
    "sft": sft.build_trainer,
    "rm": rm.build_trainer,
    "dpo": dpo.build_trainer,
    "kto": kto.build_trainer,
}

__all__ = ["STAGES", "StageContext"]
