"""The tune step: a Ray Tune sweep of train trials over one shared tokenized dataset.

    result = run_tune(prepare_config("examples/tune/tiny_llama_lora_asha.yaml"))
    result.best_output_dir   # the best trial's adapter or model, in LLaMA-Factory's layout

The dataset is preprocessed once on the driver and materialized into the object store; every trial trains
on it. Concurrency is fitted to the cluster's free resources (`resources.plan_trials`). Outputs, under the
config's `output_dir`: `trials/<trial id>/` (each trial's output folder), `best/` (a copy of the best
completed trial's folder, with a manifest) and `tune_results.csv` / `tune_results.json`.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray import storage
from lf_ray.artifacts import atomic_directory, build_manifest, publish, write_json
from lf_ray.config.tune_args import TuneSpec, parse_tune_spec
from lf_ray.constants import MANIFEST_NAME
from lf_ray.errors import ConfigError
from lf_ray.tune.results import (
    COMPLETED,
    FAILED,
    STOPPED,
    TrialRow,
    format_table,
    select_best,
    sort_rows,
    write_results,
)

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig
    from lf_ray.tune.resources import TrialPlan
    from lf_ray.tune.trial import TrialContext

TRIALS_DIR = "trials"
BEST_DIR = "best"


@dataclass
class TuneResult:
    """What a sweep produced; `best_output_dir` is the step's artifact (feeds eval and export)."""

    output_dir: str  # a local path or a URI
    best_output_dir: str
    best_trial_id: str
    best_config: dict[str, Any]
    best_metrics: dict[str, Any]
    table_path: str
    json_path: str
    trials: list[TrialRow]
    plan: TrialPlan
    mlflow_run_id: str | None
    dataset_path: str


def tune_spec(cfg: LfRayConfig) -> TuneSpec:
    """The checked `tune:` section of `cfg` (a clear error when there is none)."""
    from lf_ray.config.schema import all_keys

    if cfg.tune.tune is None:
        raise ConfigError(
            f"{cfg.source or 'the config'} has no `tune:` section, so there is nothing to sweep; add one, e.g. "
            "tune: {param_space: {learning_rate: {loguniform: [1.0e-4, 1.0e-2]}}, num_samples: 4} "
            "(see examples/tune/), or run `lf-ray train` for a single run"
        )
    spec, problems = parse_tune_spec(cfg.tune.tune, all_keys())
    if spec is None:
        raise ConfigError(f"{cfg.source or 'the config'}: " + "; ".join(problems))
    return spec


def sweep_name(cfg: LfRayConfig) -> str:
    """`ray_run_name`, else derived from the stage and `output_dir` (stable across invocations)."""
    if cfg.ray.ray_run_name:
        return cfg.ray.ray_run_name
    from lf_ray.train.launcher import output_slug

    return f"lf_ray_tune_{cfg.finetuning.stage}_{output_slug(cfg)}"


def run_tune(
    cfg: LfRayConfig,
    *,
    output_dir: Path | None = None,
    mlflow_parent_run_id: str | None = None,
    show_progress: bool = True,
) -> TuneResult:
    """Preprocess once, run the sweep, publish the best completed trial's folder as `<output_dir>/best`.

    `output_dir` overrides the config's; with `mlflow_parent_run_id` the sweep's MLflow run nests under it.
    """
    from lf_ray.cluster import ensure_ray
    from lf_ray.data.preprocess import run_preprocess
    from lf_ray.tracking.mlflow_tracking import tracking_uri
    from lf_ray.train.launcher import (
        check_model_fits_finetuning,
        check_trainable,
        written_locally,
    )
    from lf_ray.tune.resources import plan_trials

    spec = tune_spec(cfg)
    if output_dir is not None:  # a copy: the caller's config stays as it was
        cfg = dataclasses.replace(cfg, training={**cfg.training, "output_dir": str(output_dir)})
    check_trainable(cfg)
    target = storage.resolve(cfg.training["output_dir"])
    out = written_locally(target)  # for a URI: a node-local folder, uploaded once the sweep ends
    name = sweep_name(cfg)
    _prepare_output(cfg, target, name)
    dataset = run_preprocess(cfg)  # once, for every trial
    check_model_fits_finetuning(cfg)
    ensure_ray(cfg.ray.ray_init_kwargs)
    plan = plan_trials(spec, cfg.ray, _free_resources())
    for note in plan.notes:
        print(f"[tune] {note}", flush=True)
    uri = tracking_uri()
    sweep_run = _start_sweep_run(cfg, spec, name, mlflow_parent_run_id, uri)
    context = _trial_context(cfg, spec, plan, out, name, sweep_run, uri, dataset.path)
    try:
        records = _fit_sweep(cfg, spec, context, name, show_progress)
    except BaseException:
        _finish_tracking(sweep_run, [], None, [], uri)  # the sweep's run ends FAILED, not RUNNING forever
        raise

    rows = sort_rows([_row(record, out) for record in records], spec.mode)
    best_id = _best_id(rows, spec)
    csv_path, json_path = write_results(rows, spec.metric, best_id, out)
    table = format_table(rows, spec.metric, best_id)
    print(f"[tune] {len(rows)} trial(s), {spec.metric} ({spec.mode}), * = best:\n{table}", flush=True)
    _finish_tracking(sweep_run, rows, best_id, [csv_path, json_path], uri)
    best = select_best(rows, spec.metric, spec.mode)  # the clear error when no trial completed
    _publish_best(best, out, spec, dataset.path)
    if target != str(out):
        _upload_sweep(out, target)
    return TuneResult(
        output_dir=target,
        best_output_dir=storage.join(target, BEST_DIR),
        best_trial_id=best.trial_id,
        best_config=dict(best.params),
        best_metrics=dict(best.metrics),
        table_path=storage.join(target, csv_path.name),
        json_path=storage.join(target, json_path.name),
        trials=rows,
        plan=plan,
        mlflow_run_id=sweep_run,
        dataset_path=dataset.path,
    )


def _free_resources(settle_s: float = 10.0) -> dict[str, float]:
    """The cluster's free resources, once work this process just finished (the preprocess step's actor pool)
    has handed its CPUs back; on a cluster busy with other jobs, what is free after `settle_s`."""
    import ray

    total_cpus = ray.cluster_resources().get("CPU", 0.0)
    deadline = time.monotonic() + settle_s
    while True:
        free = ray.available_resources()
        if free.get("CPU", 0.0) >= total_cpus - 1e-6 or time.monotonic() > deadline:
            return free
        time.sleep(0.5)


def _prepare_output(cfg: LfRayConfig, target: str, name: str) -> None:
    """A sweep starts afresh: an earlier sweep's trials are replaced only with `overwrite_output_dir: true`."""
    from lf_ray.train.launcher import storage_path, written_locally

    previous = [storage.join(target, d) for d in (TRIALS_DIR, BEST_DIR) if storage.is_dir(storage.join(target, d))]
    if previous and not cfg.training.get("overwrite_output_dir"):
        raise ConfigError(
            f"output_dir {target} already holds a sweep ({previous[0]}); set `overwrite_output_dir: true` "
            "to replace it, or choose another `output_dir`"
        )
    for path in previous:
        storage.delete(path)
    for folder in (TRIALS_DIR, BEST_DIR):  # a URI's local staging folder from an interrupted sweep
        shutil.rmtree(written_locally(target) / folder, ignore_errors=True)
    for stale in (name, f"{name}_train"):
        storage.delete(storage.join(storage_path(cfg), stale))


def _upload_sweep(local: Path, target: str) -> None:
    """Commit a sweep's outputs at a URI, without the trials' local checkpoint-N folders (Ray Train has persisted
    them to its storage)."""
    for checkpoint in (local / TRIALS_DIR).glob("*/checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    publish(local, target)


def _trial_context(
    cfg: LfRayConfig,
    spec: TuneSpec,
    plan: TrialPlan,
    out: Path,
    name: str,
    sweep_run: str | None,
    uri: str,
    dataset_path: str,
) -> TrialContext:
    import ray

    from lf_ray.train.launcher import storage_path
    from lf_ray.tune.trial import TrialContext

    return TrialContext(
        base=cfg.to_dict(non_default_only=True),
        dataset_path=dataset_path,
        trials_dir=str(out / TRIALS_DIR),
        train_storage=storage.join(storage_path(cfg), f"{name}_train"),
        plan=plan,
        metric=spec.metric,
        cluster_gpus=ray.cluster_resources().get("GPU", 0.0),
        forward_checkpoints=spec.scheduler == "pbt",
        mlflow_run_id=sweep_run,
        tracking_uri=uri,
    )


def _fit_sweep(
    cfg: LfRayConfig, spec: TuneSpec, context: TrialContext, name: str, show_progress: bool
) -> list[dict[str, Any]]:
    """Run the Tuner; return one record per trial (id, sampled config, last result, error)."""
    from ray import tune

    from lf_ray.train.launcher import ray_storage
    from lf_ray.tune.space import build_param_space, build_scheduler, build_search_alg
    from lf_ray.tune.trial import LfRayTrial

    plan = context.plan
    path, filesystem = ray_storage(cfg)
    recorder = _trial_recorder(spec.metric, show_progress)
    trainable = tune.with_resources(tune.with_parameters(LfRayTrial, context=context), {"CPU": plan.driver_cpus})
    tuner = tune.Tuner(
        trainable,
        param_space=build_param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            scheduler=build_scheduler(spec),
            search_alg=build_search_alg(spec, plan.concurrency),
            num_samples=spec.num_samples,  # concurrency: the search algorithm holds it to plan.concurrency
            reuse_actors=False,  # a stopped trial's actor goes, and its worker group with it
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=path,
            storage_filesystem=filesystem,
            callbacks=[recorder],
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),  # PBT asks for the ones it needs
            verbose=0,
            log_to_file=True,
        ),
    )
    tuner.fit()
    return list(recorder.records.values())


def _row(record: dict[str, Any], out: Path) -> TrialRow:
    """A trial's table row; a trial completed when its worker group wrote `all_results.json`."""
    import json

    trial_dir = out / TRIALS_DIR / record["trial_id"]
    last = record["result"]
    final: dict[str, Any] = {}
    if (trial_dir / "all_results.json").is_file():
        final = json.loads((trial_dir / "all_results.json").read_text(encoding="utf-8"))
    status = FAILED if record["error"] else COMPLETED if final else STOPPED
    metrics = {key: value for key, value in {**last, **final}.items() if _is_metric(key, value)}
    return TrialRow(
        trial_id=record["trial_id"],
        status=status,
        params=dict(record["config"]),
        metric=metrics.get(record["metric"]),
        metrics=metrics,
        iterations=int(last.get("training_iteration", 0)),
        step=last.get("step"),
        time_s=float(last.get("time_total_s", 0.0)),
        output_dir=str(trial_dir),
        error=record["error"],
    )


def _is_metric(key: str, value: Any) -> bool:
    skipped = ("training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "pid", "done", "trial_id")
    return isinstance(value, (int, float)) and not isinstance(value, bool) and key not in skipped


def _best_id(rows: list[TrialRow], spec: TuneSpec) -> str | None:
    from lf_ray.errors import TrainError

    try:
        return select_best(rows, spec.metric, spec.mode).trial_id
    except TrainError:
        return None


def _publish_best(best: TrialRow, out: Path, spec: TuneSpec, dataset_path: Path) -> Path:
    """`<output_dir>/best`: a copy of the best trial's folder (no checkpoints), with a manifest saying which."""
    source = Path(best.output_dir)
    target = out / BEST_DIR
    ignore = shutil.ignore_patterns("checkpoint-*", "pbt-start-*")
    with atomic_directory(target) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True, ignore=ignore)
        manifest = build_manifest(
            "tune_best",
            inputs={"dataset": str(dataset_path)},
            metrics=best.metrics,
            trial_id=best.trial_id,
            metric=spec.metric,
            mode=spec.mode,
            value=best.metric,
            config=best.params,
            source=str(source),
        )
        write_json(tmp / MANIFEST_NAME, manifest)
    return target


def _start_sweep_run(cfg: LfRayConfig, spec: TuneSpec, name: str, parent: str | None, uri: str) -> str:
    """The sweep's MLflow run: the base config and the tune section as params."""
    import json

    from lf_ray.tracking.sweep_runs import start_sweep_run

    params = {**cfg.to_dict(non_default_only=True), "tune": json.dumps(cfg.tune.tune, default=str)}
    params["tune.num_trials"] = spec.num_trials
    return start_sweep_run(name, params, stage=cfg.finetuning.stage, parent_run_id=parent, uri=uri)


def _finish_tracking(sweep_run: str, rows: list[TrialRow], best_id: str | None, files: list[Path], uri: str) -> None:
    """Each trial's final metrics and status on its child run; the best metrics and the table on the sweep run."""
    from lf_ray.tracking.sweep_runs import finish_sweep_run, finish_trial_run, trial_runs

    children = trial_runs(sweep_run, uri=uri)
    for row in rows:
        if row.trial_id in children:
            finish_trial_run(children[row.trial_id], {"metric": row.metric, **row.metrics}, row.status, uri=uri)
    best = next((row for row in rows if row.trial_id == best_id), None)
    best_metrics = {"metric": best.metric, **best.metrics} if best else {}
    finish_sweep_run(sweep_run, best_metrics, files, failed=best is None, uri=uri)


def _trial_recorder(metric: str, show_progress: bool) -> Any:
    """A Tune callback (its class is built here: Ray is imported only when a sweep runs) that remembers each
    trial's sampled config, last result and error, and prints a progress line per report."""
    from ray.tune import Callback

    class TrialRecorder(Callback):
        def __init__(self) -> None:
            self.records: dict[str, dict[str, Any]] = {}

        def _record(self, trial: Any, error: str | None = None) -> None:
            record = self.records.setdefault(trial.trial_id, {"trial_id": trial.trial_id, "metric": metric})
            record.update(config=dict(trial.config), result=dict(trial.last_result or {}))
            record.setdefault("error", None)
            if error:
                record["error"] = error

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self._record(trial)
            if show_progress:
                sampled = ", ".join(f"{k}={_short(v)}" for k, v in trial.config.items())
                step = result.get("step", "?")
                print(f"[tune] {trial.trial_id} step {step}: {metric} {_short(result.get(metric))} ({sampled})")

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._record(trial)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._record(trial, error=_error_summary(trial))

    return TrialRecorder()


def _error_summary(trial: Any) -> str:
    """The last line of a trial's error: the LfRayError message when a worker raised one."""
    error = trial.get_error()
    lines = [line.strip() for line in str(error or "failed").splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
