"""The eval step: loss / perplexity, generation metrics and multiple-choice accuracy of a model + adapters.

    run_eval(prepare_config("examples/eval/tiny_llama_lora_eval.yaml"))

Three parts, each run when the config asks for it:

- **loss**: token-weighted cross-entropy and perplexity on the eval split (`eval_dataset`, or `val_size` of
  `dataset`, or a tokenized split handed in by the pipeline) — `eval_results.json`;
- **predict** (`predict_with_generate: true`): the eval prompts tokenized by the preprocess step, completed by
  Ray Data batch inference, written to `generated_predictions.jsonl` (LF's prompt / predict / label, plus
  `base_predict` with `compare_base_model`) and scored with BLEU-4 / ROUGE — `predict_results.json`;
- **task** (`task: demo_mmlu`, or LF's `mmlu_test` / `cmmlu_test` / `ceval_validation` folders): multiple choice,
  per subject, per category and overall — `choice_results.json`, and LF's score table in `choice_results.log`.

Results go to `save_dir` (else `output_dir`); every file is written atomically and `manifest.json` last.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray import storage
from lf_ray.artifacts import build_manifest, publish, write_json, write_text
from lf_ray.constants import BUILTIN_DATASET_DIR, DATASET_EVAL_DIR, EVAL_TASKS_DIR, MANIFEST_NAME
from lf_ray.errors import ConfigError
from lf_ray.evaluate.choice_tasks import has_task_file
from lf_ray.stages import STAGES

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "generated_predictions.jsonl"


@dataclass(frozen=True)
class EvalPlan:
    results_dir: str  # a local path or a URI
    loss: bool  # on the eval split
    predict: bool  # generate and score
    task: Path | None  # the multiple-choice task folder


@dataclass(frozen=True)
class EvalResult:
    results_dir: str
    metrics: dict[str, Any]
    predictions: str | None


def task_path(cfg: LfRayConfig) -> Path | None:
    if not cfg.eval.task:
        return None
    root = EVAL_TASKS_DIR if cfg.eval.task_dir == BUILTIN_DATASET_DIR else Path(cfg.eval.task_dir).expanduser()
    return root / cfg.eval.task


def plan_eval(cfg: LfRayConfig, *, eval_split: str | None = None) -> EvalPlan:
    """What `run_eval` will do, or a ConfigError saying what is missing; reads no model."""
    results = cfg.eval.save_dir or cfg.training.get("output_dir")
    if not results:
        raise ConfigError("eval needs `save_dir` (or `output_dir`): the folder its results go to. Fix: set save_dir.")
    has_eval_rows = bool(cfg.data.eval_dataset or (cfg.data.dataset and cfg.data.val_size))
    predict = bool(cfg.training.get("predict_with_generate"))
    if predict and not cfg.data.eval_dataset:
        raise ConfigError(
            "`predict_with_generate: true` generates answers to `eval_dataset`, which is not set. "
            "Fix: set eval_dataset (e.g. identity_eval)."
        )
    task = task_path(cfg)
    if task is not None and not has_task_file(task):
        raise ConfigError(
            f"task `{cfg.eval.task}` has no task.json in {task} (lf-ray's layout), nor LLaMA-Factory's mapping.json. "
            "Fix: set `task_dir` to the folder holding the task (`builtin` for the shipped demo_mmlu), or name a "
            "task folder that exists."
        )
    if cfg.eval.compare_base_model and not cfg.model.adapter_name_or_path:
        raise ConfigError(
            "`compare_base_model: true` compares the model with and without its adapters, but "
            "`adapter_name_or_path` is not set. Fix: set adapter_name_or_path, or drop compare_base_model."
        )
    loss = STAGES[cfg.finetuning.stage].eval_loss and (eval_split is not None or has_eval_rows)
    if not (loss or predict or task):
        raise ConfigError(
            "nothing to evaluate: set `eval_dataset` (or `val_size` with `dataset`) for loss and perplexity, "
            "`predict_with_generate: true` with `eval_dataset` for generation metrics, or `task` for a "
            "multiple-choice benchmark"
        )
    return EvalPlan(results_dir=storage.resolve(results), loss=loss, predict=predict, task=task)


def _derived_config(cfg: LfRayConfig, **changes: Any) -> LfRayConfig:
    """`cfg` with some keys changed and no output folders (so derived datasets land in lf-ray's cache)."""
    from lf_ray.config import build_config

    values = cfg.to_dict(non_default_only=True)
    values.update(output_dir=None, tokenized_path=None, do_train=False, **changes)
    return build_config({key: value for key, value in values.items() if value is not None}, source=cfg.source)


def _eval_split(cfg: LfRayConfig, *, predict: bool, work_dir: str | None = None) -> Path:
    """The tokenized eval rows (prompts only when `predict`), preprocessed or reused by fingerprint, into
    `work_dir` when given (a pipeline's artifact, on storage every node reads), else lf-ray's cache."""
    from lf_ray.data.preprocess import run_preprocess

    stage = "sft" if predict or cfg.finetuning.stage != "pt" else "pt"
    changes: dict[str, Any] = {"stage": stage, "predict_with_generate": predict, "packing": False}
    if cfg.data.eval_dataset:
        changes.update(dataset=None, val_size=0.0)
    derived = _derived_config(cfg, **changes)
    if work_dir is not None:
        derived.data.tokenized_path = storage.join(work_dir, "tokenized_prompts" if predict else "tokenized_rows")
    return storage.localize(storage.join(run_preprocess(derived).path, DATASET_EVAL_DIR))


def _predict(cfg: LfRayConfig, split: Path, results: Path) -> tuple[dict[str, Any], Path]:
    from lf_ray.evaluate.batch_inference import predict_split

    started = time.perf_counter()
    base_cfg = _derived_config(cfg, adapter_name_or_path=None) if cfg.eval.compare_base_model else None
    path = results / PREDICTIONS_FILE
    metrics = predict_split(cfg, split, path, base=base_cfg)
    metrics["predict_runtime"] = round(time.perf_counter() - started, 3)
    return metrics, path


def _choice_task(cfg: LfRayConfig, task: Path, results: Path) -> dict[str, Any]:
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.evaluate.choice_tasks import evaluate_choice_task, format_scores, load_choice_task
    from lf_ray.model.loading import load_model

    loaded = load_choice_task(task, split=cfg.eval.task_split or "test", lang=cfg.eval.lang)  # before the model
    tokenizer, _ = tokenizer_spec(cfg).load()
    model, _ = load_model(cfg, for_training=False, tokenizer=tokenizer)
    scores = evaluate_choice_task(model, tokenizer, loaded, n_shot=cfg.eval.n_shot, batch_size=cfg.eval.batch_size)
    header = {"task": loaded.name, "split": loaded.split, "lang": loaded.lang, "n_shot": cfg.eval.n_shot}
    write_json(results / "choice_results.json", {**header, **scores})
    table = format_scores(scores)
    write_text(results / "choice_results.log", table + "\n")
    logger.info("%s (%s split):\n%s", loaded.name, loaded.split, table)
    return {
        "choice_accuracy": scores["average"],
        **{f"choice_{subject}": value for subject, value in scores["per_subject"].items()},
        **{f"choice_category_{_slug(name)}": value for name, value in scores["per_category"].items()},
    }


def _slug(category: str) -> str:
    """A metric-name form of LF's category: "Social Sciences" -> "social_sciences"."""
    return "_".join(category.lower().split())


def run_eval(cfg: LfRayConfig, *, eval_split: str | None = None, work_dir: str | None = None) -> EvalResult:
    """Evaluate the config's model (base + `adapter_name_or_path`) and write the results folder.

    `eval_split`: tokenized rows (a path or URI) to score instead of the config's eval data; `work_dir`: where the
    eval data is tokenized (default: lf-ray's cache). The results folder may be a URI: the files are written
    locally and uploaded, the manifest last. It may also be the training's output_dir, so nothing else in it is
    removed."""
    plan = plan_eval(cfg, eval_split=eval_split)
    remote = storage.is_uri(plan.results_dir)
    results = storage.local_mirror(plan.results_dir) if remote else Path(plan.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    storage.delete(storage.join(plan.results_dir, MANIFEST_NAME))  # unfinished until the new manifest lands
    metrics: dict[str, Any] = {}
    timings: dict[str, float] = {}
    predictions = None
    if plan.loss:
        started = time.perf_counter()
        from lf_ray.evaluate.batch_inference import score_split

        split = storage.localize(eval_split) if eval_split else _eval_split(cfg, predict=False, work_dir=work_dir)
        metrics.update(score_split(cfg, split))
        write_json(results / "eval_results.json", dict(metrics))
        timings["loss_s"] = round(time.perf_counter() - started, 3)
    if plan.predict:
        started = time.perf_counter()
        predict_metrics, predictions = _predict(cfg, _eval_split(cfg, predict=True, work_dir=work_dir), results)
        write_json(results / "predict_results.json", predict_metrics)
        metrics.update(predict_metrics)
        timings["predict_s"] = round(time.perf_counter() - started, 3)
    if plan.task is not None:
        started = time.perf_counter()
        metrics.update(_choice_task(cfg, plan.task, results))
        timings["task_s"] = round(time.perf_counter() - started, 3)
    write_json(results / "all_results.json", metrics)
    write_json(results / MANIFEST_NAME, _manifest(cfg, metrics, timings))
    if remote:
        publish(results, plan.results_dir, replace=False)
    logger.info("Evaluated %s: %s", cfg.model.model_name_or_path, metrics)
    shown = storage.join(plan.results_dir, PREDICTIONS_FILE) if predictions else None
    return EvalResult(results_dir=plan.results_dir, metrics=metrics, predictions=shown)


def _manifest(cfg: LfRayConfig, metrics: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    return build_manifest(
        "evaluation",
        metrics=metrics,
        timings=timings,
        model=cfg.model.model_name_or_path,
        adapters=list(cfg.model.adapter_name_or_path or []),
        eval_dataset=list(cfg.data.eval_dataset or []),
        task=cfg.eval.task,
    )
