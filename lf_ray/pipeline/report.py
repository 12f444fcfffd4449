"""What `lf-ray run` and `lf-ray runs` print: the plan, the run's outcome, the run store's listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from lf_ray.pipeline.store import RunRecord, duration

if TYPE_CHECKING:
    from lf_ray.pipeline.executor import PipelineResult
    from lf_ray.pipeline.plan import PipelinePlan

SHOWN_METRICS = ("train_loss", "eval_loss", "perplexity", "predict_bleu-4", "predict_rouge-l", "choice_accuracy")


def _cache_state(step: Any) -> str:
    if step.forced:
        return "run (forced)"
    return "reuse" if step.cached else "run"


def print_plan(plan: PipelinePlan, *, configs: bool = True) -> None:
    spec = plan.spec
    if plan.command:
        print(f"# lf-ray {spec.name} ({spec.source or 'a config'}), run record under {plan.root}")
    else:
        print(f"# pipeline {spec.name} ({spec.source or 'built in Python'}), artifacts under {plan.root}")
    print(f"# plan: {len(plan.steps)} step(s), {len(plan.to_run)} to run, {len(plan.steps) - len(plan.to_run)} cached")
    print(f"{'step':14} {'uses':10} {'needs':20} {'cache':13} artifact")
    for step in plan.steps.values():
        needs = ",".join(step.needs) or "-"
        print(f"{step.id:14} {step.uses:10} {needs:20} {_cache_state(step):13} {step.artifact}")
    if not configs:
        return
    for step in plan.steps.values():
        print(f"\n# step {step.id} ({step.uses}), fingerprint {step.fingerprint[:16]}, resources {step.resources}")
        print(yaml.safe_dump(step.config, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip())


def _metric_text(metrics: dict[str, Any]) -> str:
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items() if k in SHOWN_METRICS}
    return ", ".join(f"{k} {v}" for k, v in shown.items())


def print_run(record: RunRecord) -> None:
    data = record.data
    took = duration(record)
    print(f"run {data['run_id']}  pipeline {data['pipeline']}  status {record.effective_status}")
    print(
        f"  started {data['started_at']}, finished {data.get('finished_at') or '-'}"
        + (f" ({took:.0f} s)" if took else "")
    )
    print(f"  source  {data.get('source') or '-'}\n  record  {record.path}")
    if data.get("mlflow"):
        print(f"  mlflow  {data['mlflow']['tracking_uri']} (parent run {data['mlflow']['run_id']})")
    if data.get("error"):
        print(f"  error   {data['error']}")
    for step_id, step in data["steps"].items():
        seconds = f"{step['duration_s']:.1f} s" if step.get("duration_s") else "-"
        metrics = _metric_text(step.get("metrics") or {})
        print(f"  {step_id:14} {step['uses']:10} {step['status']:10} {seconds:>9}  {metrics}")
        print(f"  {'':14} {step['artifact_dir']}")
        if step.get("error"):
            print(f"  {'':14} {step['error']}")
        if step.get("log"):
            print(f"  {'':14} log: {step['log']}")


def run_row(record: RunRecord) -> list[str]:
    """One run as `lf-ray runs list` and the board's Runs tab show it: id, pipeline, status, start, seconds,
    step counts by status."""
    data = record.data
    counts: dict[str, int] = {}
    for step in data["steps"].values():
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    took = duration(record)
    return [
        data["run_id"],
        data["pipeline"],
        record.effective_status,
        data["started_at"],
        f"{took:.0f}" if took is not None else "-",
        ", ".join(f"{n} {status}" for status, n in counts.items()),
    ]


def print_runs(records: list[RunRecord]) -> None:
    if not records:
        print("no runs yet")
        return
    print(f"{'run':28} {'pipeline':14} {'status':12} {'started':25} {'seconds':>8}  steps")
    for record in records:
        run_id, pipeline, status, started, seconds, steps = run_row(record)
        print(f"{run_id:28} {pipeline:14} {status:12} {started:25} {seconds:>8}  {steps}")


def print_result(result: PipelineResult) -> None:
    from lf_ray.pipeline.learning import print_learning

    print()
    print_run(result.record)
    print_learning(result.record)
    if result.tracking_uri:
        print(f"\nMLflow: {result.tracking_uri}\n  open it with: mlflow ui --backend-store-uri {result.tracking_uri}")
