"""Cross-field rules of a sweep config (`tune:`): the section itself, and whether training reports the metric.

Ray Tune sees a trial's metrics when the trial saves a checkpoint (`RayTrainReportCallback` reports at each
save), so a scheduler that stops or perturbs trials (asha, pbt) needs the metric fresh at every save.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lf_ray.config.tune_args import parse_tune_spec

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig


def tune_section_is_valid(cfg: LfRayConfig) -> str | None:
    from lf_ray.config.schema import all_keys

    if cfg.tune.tune is None:
        return None
    _, problems = parse_tune_spec(cfg.tune.tune, all_keys())
    if len(problems) <= 1:
        return problems[0] if problems else None
    return f"{len(problems)} problems in the `tune:` section:" + "".join(f"\n      - {p}" for p in problems)


def tune_metric_needs_evaluation(cfg: LfRayConfig) -> str | None:
    metric = (cfg.tune.tune or {}).get("metric", "eval_loss")
    if cfg.tune.tune is None or not str(metric).startswith("eval_") or str(cfg.get("eval_strategy")) != "no":
        return None
    return (
        f"`tune.metric: {metric}` comes from evaluation during training, which is off: set `eval_strategy: steps` "
        "with `eval_steps`, and `val_size` (e.g. 0.1) or `eval_dataset`; or use `tune.metric: loss`"
    )


def tune_scheduler_sees_fresh_metric(cfg: LfRayConfig) -> str | None:
    section = cfg.tune.tune or {}
    scheduler, metric = section.get("scheduler", "fifo"), str(section.get("metric", "eval_loss"))
    if scheduler not in ("asha", "pbt"):
        return None
    if metric == "train_loss":
        return (
            f"`tune.scheduler: {scheduler}` compares trials while they train, but `train_loss` exists only at the "
            "end; use `tune.metric: loss` (logged every `logging_steps`) or eval_loss, or `tune.scheduler: fifo`"
        )
    if not metric.startswith("eval_") or str(cfg.get("eval_strategy")) == "no":
        return None
    save, evaluate = str(cfg.get("save_strategy")), str(cfg.get("eval_strategy"))
    eval_steps = cfg.get("eval_steps") or cfg.get("logging_steps")
    if save != evaluate or (save == "steps" and cfg.get("save_steps") % eval_steps):
        return (
            f"`tune.scheduler: {scheduler}` reads `{metric}` at each checkpoint save, so saves must follow "
            f"evaluations (got save_strategy {save}, save_steps {cfg.get('save_steps')}, eval_strategy {evaluate}, "
            f"eval_steps {eval_steps}); set save_strategy = eval_strategy and save_steps a multiple of eval_steps"
        )
    return None


def tune_metric_reward_outside_online_rl(cfg: LfRayConfig) -> str | None:
    metric = str((cfg.tune.tune or {}).get("metric", "eval_loss"))
    stage = cfg.finetuning.stage
    if cfg.tune.tune is None or stage in ("grpo", "ppo") or not metric.startswith(("reward", "rewards/")):
        return None
    return f"`tune.metric: {metric}` is logged by `stage: grpo` and `stage: ppo` only (got `stage: {stage}`)"


TUNE_RULES = (
    tune_section_is_valid,
    tune_metric_needs_evaluation,
    tune_scheduler_sees_fresh_metric,
    tune_metric_reward_outside_online_rl,
)
