"""What each step type does inside the pipeline: call the step's own entry point with its planned config.

    run(cfg, context) -> StepOutput(outputs, metrics)

The same functions the CLI commands call (`run_preprocess`, `run_training`, `run_eval`, `run_export`); the
pipeline only hands them their folders (already in `cfg`) and their inputs' artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray.constants import DATASET_EVAL_DIR

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig


@dataclass
class StepContext:
    step_id: str
    artifact_dir: Path
    inputs: dict[str, dict[str, Any]]  # need id -> that step's outputs
    mlflow_run_id: str | None = None


@dataclass
class StepOutput:
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def preprocess_step(cfg: LfRayConfig, context: StepContext) -> StepOutput:
    from lf_ray.data.preprocess import run_preprocess

    result = run_preprocess(cfg)
    manifest = result.manifest
    metrics = {key: manifest.get(key) for key in ("rows_in", "rows_out", "tokens", "truncated", "dropped")}
    metrics["processing_s"] = manifest.get("timings", {}).get("processing_s")
    return StepOutput({"dataset": str(result.path)}, metrics)


def train_step(cfg: LfRayConfig, context: StepContext) -> StepOutput:
    from lf_ray.train.launcher import run_training

    result = run_training(cfg, mlflow_run_id=context.mlflow_run_id)
    return StepOutput({"model": str(result.output_dir), "checkpoint": result.checkpoint_path}, result.metrics)


def tune_step(cfg: LfRayConfig, context: StepContext) -> StepOutput:
    """The sweep's best trial becomes the step's model (`<output_dir>/best`); its MLflow run nests here."""
    from lf_ray.tune import run_tune

    result = run_tune(cfg, mlflow_parent_run_id=context.mlflow_run_id)
    metrics = {**result.best_metrics, "trials": len(result.trials)}
    return StepOutput({"model": str(result.best_output_dir), "results_table": str(result.table_path)}, metrics)


def eval_step(cfg: LfRayConfig, context: StepContext) -> StepOutput:
    """Loss on the eval split the training data set aside, unless `eval_dataset` names other rows."""
    from lf_ray.evaluate.evaluator import run_eval

    eval_split = None
    if not cfg.data.eval_dataset:
        for outputs in context.inputs.values():
            split = Path(outputs["dataset"]) / DATASET_EVAL_DIR if outputs.get("dataset") else None
            if split is not None and split.is_dir():
                eval_split = split
    result = run_eval(cfg, eval_split=eval_split, work_dir=context.artifact_dir)
    outputs = {"results": str(result.results_dir)}
    if result.predictions:
        outputs["predictions"] = str(result.predictions)
    return StepOutput(outputs, result.metrics)


def export_step(cfg: LfRayConfig, context: StepContext) -> StepOutput:
    from lf_ray.export.merge import run_export

    result = run_export(cfg)
    return StepOutput({"model": str(result.export_dir)}, {"weight_files": len(result.shards)})


def serve_step(cfg: LfRayConfig, context: StepContext) -> StepOutput:
    """Deploy the model, send it one real chat completion, and record the endpoint; unless `keep_alive`, the
    application is removed again once the smoke request has answered."""
    from lf_ray.artifacts import write_json
    from lf_ray.serve.app import smoke_request, start_serve, stop_serve

    endpoint = start_serve(cfg, blocking=False)
    try:
        body = smoke_request(endpoint)
    finally:
        if not cfg.serve.keep_alive:
            stop_serve(endpoint)
    answer = body["choices"][0]["message"]["content"]
    record = {
        "url": endpoint.url,
        "app_name": endpoint.app_name,
        "models": endpoint.model_ids,
        "keep_alive": cfg.serve.keep_alive,
        "smoke_request": {"prompt": "Hello!", "answer": answer, "usage": body.get("usage")},
    }
    path = context.artifact_dir / "endpoint.json"
    write_json(path, record)
    print(f"serving {endpoint.base_model} at {endpoint.url}; smoke answer: {answer!r}", flush=True)
    completion_tokens = (body.get("usage") or {}).get("completion_tokens", 0)
    return StepOutput({"endpoint": str(path), "url": endpoint.url}, {"smoke_completion_tokens": completion_tokens})


STEP_RUNNERS: dict[str, Callable[[LfRayConfig, StepContext], StepOutput]] = {
    "preprocess": preprocess_step,
    "train": train_step,
    "tune": tune_step,
    "eval": eval_step,
    "export": export_step,
    "serve": serve_step,
}
