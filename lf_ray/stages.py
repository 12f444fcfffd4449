"""The training stages, one row each: LLaMA-Factory's `stage:` values and what lf-ray does for each. Pure data.

    STAGES["dpo"].processor     # "pairwise": how its rows are tokenized
    STAGES["rm"].model_head     # "reward": a sequence-classification head instead of the LM head
    STAGES["sft"].trainer       # "lf_ray.train.stages.sft": the module whose build_trainer() makes its trainer

Adding a stage means one row here and one module in `lf_ray/train/stages/`. The stage's training-arguments class
(TRL's `DPOConfig`, ...) is chosen in `train.arguments`, where `pref_loss` picks among DPO's variants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ProcessorKind = Literal["pretrain", "supervised", "unsupervised", "pairwise", "feedback"]
ModelHead = Literal["causal_lm", "reward"]


@dataclass(frozen=True)
class StageSpec:
    name: str
    processor: ProcessorKind
    """How its training rows are tokenized (`data.processors`)."""
    trainer: str
    """The module under lf_ray.train.stages whose `build_trainer(ctx)` builds its trainer."""
    model_head: ModelHead = "causal_lm"
    whole_split: bool = False
    """Every worker reads the whole split and the trainer deals rows to ranks itself (grpo: TRL's sampler groups a
    prompt's completions; ppo: one order of the prompts that every worker shares, resumable at any step), instead
    of streaming its own share (`train.stream`)."""
    eval_loss: bool = False
    """Whether `lf-ray eval` reports loss / perplexity on its eval rows (the LM objective)."""
    summary: str = ""


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("pt", "pretrain", "lf_ray.train.stages.pt", eval_loss=True, summary="pre-training"),
        StageSpec("sft", "supervised", "lf_ray.train.stages.sft", eval_loss=True, summary="supervised"),
        StageSpec("rm", "pairwise", "lf_ray.train.stages.rm", model_head="reward", summary="reward modelling"),
        StageSpec("dpo", "pairwise", "lf_ray.train.stages.dpo", summary="preference (DPO, ORPO, SimPO)"),
        StageSpec("kto", "feedback", "lf_ray.train.stages.kto", summary="preference (KTO)"),
        StageSpec("grpo", "unsupervised", "lf_ray.train.stages.grpo", whole_split=True, summary="online RL (GRPO)"),
        StageSpec("ppo", "unsupervised", "lf_ray.train.stages.ppo", whole_split=True, summary="online RL (PPO)"),
    )
}
