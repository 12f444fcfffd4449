"""What `lf-ray tune` prints instead of (`--dry-run`) and after running a sweep. Pure text, no Ray."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig
    from lf_ray.config.tune_args import TuneSpec
    from lf_ray.tune.runner import TuneResult


def describe_tune_plan(cfg: LfRayConfig, spec: TuneSpec, name: str) -> str:
    """The sweep a config asks for: trials, search space, scheduler, resources per trial, outputs."""
    resources = spec.resources
    workers = resources.num_workers or cfg.ray.ray_num_workers
    per_worker = resources.resources_per_worker or cfg.ray.resources_per_worker or "auto"
    output = Path(cfg.training.get("output_dir") or "output")
    lines = [
        "# plan: tune (dry run: nothing was trained or written)",
        f"sweep        {name}: {spec.num_trials} trial(s) of stage {cfg.finetuning.stage} / "
        f"{cfg.finetuning.finetuning_type}",
        f"metric       {spec.metric} ({spec.mode})",
        f"search       {spec.search_alg}{f' (seed {spec.seed})' if spec.seed is not None else ''}, "
        f"{spec.num_samples} sample(s)",
        f"scheduler    {spec.scheduler}{_options(spec.scheduler_options)}",
    ]
    for param in spec.param_space:
        values = ", ".join(str(value) for value in param.values)
        lines.append(f"  {param.key:<24} {param.distribution}[{values}]")
    lines += [
        f"per trial    a {resources.driver_cpus} CPU driver + {workers} worker(s) x {per_worker} "
        "(auto: 1 GPU each on GPU clusters, else up to 1 CPU, shrunk so one trial fits)",
        "concurrency  "
        + (f"at most {spec.max_concurrent_trials}, " if spec.max_concurrent_trials else "")
        + "fitted at launch to the cluster's free resources",
        "dataset      tokenized once (the preprocess plan above) and shared by every trial",
        f"outputs      {output}/trials/<trial id>, {output}/best (the best completed trial), "
        f"{output}/tune_results.csv|json",
    ]
    return "\n".join(lines)


def describe_tune_result(result: TuneResult) -> str:
    """The summary printed after the results table."""
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.best_config.items()}
    metrics = {k: round(v, 4) for k, v in result.best_metrics.items() if "loss" in k and isinstance(v, float)}
    return "\n".join(
        [
            f"tune: best trial {result.best_trial_id} {shown}",
            f"  metrics     {metrics}",
            f"  best        {result.best_output_dir}",
            f"  results     {result.table_path} (and .json)",
            f"  mlflow run  {result.mlflow_run_id or '-'}",
        ]
    )


def _options(options: dict) -> str:
    return f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else ""
