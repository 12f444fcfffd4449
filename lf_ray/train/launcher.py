"""The train step on Ray Train: a `TorchTrainer` worker group per stage, with checkpoints and fault tolerance.

The driver makes sure the tokenized dataset exists (the preprocess step, reused when cached), builds the
ScalingConfig / RunConfig / CheckpointConfig / FailureConfig from the config's Ray keys, and hands each
worker its shard of the Parquet. A run keeps its name between invocations, so Ray Train restores it from
its last checkpoint unless `overwrite_output_dir` is set.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray.constants import DATASET_EVAL_DIR, DATASET_TRAIN_DIR
from lf_ray.errors import ConfigError, LfRayError, TrainError

if TYPE_CHECKING:
    from ray.train import RunConfig, ScalingConfig

    from lf_ray.config import LfRayConfig, RayArguments

TRAINABLE_STAGES = ("pt", "sft", "rm", "dpo", "kto")


@dataclass
class TrainResult:
    output_dir: Path
    run_path: str
    checkpoint_path: str | None
    metrics: dict[str, Any]
    dataset_path: Path


def worker_resources(ray_args: RayArguments, cluster_gpus: float) -> dict[str, float]:
    """`resources_per_worker`, or one GPU per worker when the cluster has GPUs, else one CPU."""
    if ray_args.resources_per_worker:
        return {key: float(value) for key, value in ray_args.resources_per_worker.items()}
    return {"GPU": 1.0} if cluster_gpus > 0 else {"CPU": 1.0}


def build_scaling_config(ray_args: RayArguments, cluster_gpus: float) -> ScalingConfig:
    from ray.train import ScalingConfig

    resources = worker_resources(ray_args, cluster_gpus)
    use_gpu = resources.get("GPU", 0) > 0
    if use_gpu and cluster_gpus <= 0:
        raise ConfigError(
            f"resources_per_worker asks for GPUs ({resources}) but the Ray cluster has none; "
            "add GPU nodes, or set resources_per_worker: {CPU: 1} to train on CPUs"
        )
    return ScalingConfig(
        num_workers=ray_args.ray_num_workers,
        use_gpu=use_gpu,
        resources_per_worker=resources,
        placement_strategy=ray_args.placement_strategy,
    )


def default_run_name(cfg: LfRayConfig) -> str:
    """Stable across invocations of the same config, so a re-run resumes the same Ray Train run."""
    if cfg.ray.ray_run_name:
        return cfg.ray.ray_run_name
    output = Path(cfg.training.get("output_dir") or "output").expanduser().resolve()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(output.parts[-3:]))
    return f"lf_ray_{cfg.finetuning.stage}_{slug}"


def storage_path(cfg: LfRayConfig) -> str:
    """Local paths become absolute (Ray requires it); URIs such as s3:// pass through to pyarrow."""
    path = cfg.ray.ray_storage_path
    return path if "://" in path else str(Path(path).expanduser().resolve())


def build_run_config(cfg: LfRayConfig) -> RunConfig:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig

    filesystem = None
    if cfg.ray.ray_storage_filesystem:
        import pyarrow.fs

        filesystem, _ = pyarrow.fs.FileSystem.from_uri(cfg.ray.ray_storage_filesystem)
    return RunConfig(
        name=default_run_name(cfg),
        storage_path=storage_path(cfg),
        storage_filesystem=filesystem,
        checkpoint_config=CheckpointConfig(num_to_keep=cfg.training.get("save_total_limit")),
        failure_config=FailureConfig(max_failures=cfg.ray.max_failures),
    )


def check_trainable(cfg: LfRayConfig) -> None:
    stage = cfg.finetuning.stage
    if stage not in TRAINABLE_STAGES:
        raise ConfigError(f"stage `{stage}` cannot be trained by lf-ray yet; use one of {', '.join(TRAINABLE_STAGES)}")
    if not cfg.training.get("output_dir"):
        raise ConfigError("training needs `output_dir` (where the adapter or model, logs and plots go)")
    checkpoint = cfg.training.get("resume_from_checkpoint")
    if checkpoint and not (Path(checkpoint).expanduser() / "trainer_state.json").is_file():
        raise ConfigError(
            f"resume_from_checkpoint `{checkpoint}` is not a readable checkpoint (no trainer_state.json in it); "
            "point it at a checkpoint-N folder, or remove it to resume from the run's latest checkpoint"
        )


def check_model_fits_finetuning(cfg: LfRayConfig) -> None:
    """LoRA targets, freeze layers and adapter paths checked on a weightless copy of the model, on the driver."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from lf_ray.model.adapters import check_finetuning
    from lf_ray.model.loader import resolve_model_path

    path = resolve_model_path(cfg.model.model_name_or_path)
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    model_class = AutoModelForSequenceClassification if cfg.finetuning.stage == "rm" else AutoModelForCausalLM
    with init_empty_weights():
        skeleton = model_class.from_config(config, trust_remote_code=cfg.model.trust_remote_code)
    check_finetuning(skeleton, cfg)


@contextlib.contextmanager
def worker_errors_as_lf_ray_errors() -> Iterator[None]:
    """A bad input found on a worker reaches the user as that error, not as Ray's wrapper around it."""
    from ray.train import TrainingFailedError

    try:
        yield
    except TrainingFailedError as err:
        failures = getattr(err, "worker_failures", {}) or {}
        for failure in failures.values():
            if isinstance(failure, LfRayError):
                raise failure from None
        first = next(iter(failures.values()), err)
        summary = str(first).strip().splitlines()[-1] if str(first).strip() else type(first).__name__
        raise TrainError(
            f"training failed on worker(s) {sorted(failures) or '?'}: {summary}; the workers' full tracebacks are "
            "above and in the Ray logs (/tmp/ray/session_latest/logs)"
        ) from err


def run_training(cfg: LfRayConfig, *, show_progress: bool = True, mlflow_run_id: str | None = None) -> TrainResult:
    """Preprocess (or reuse), then fit a TorchTrainer; outputs land in `output_dir` in LLaMA-Factory's layout.

    `mlflow_run_id`: an MLflow run (a pipeline step's) that rank 0 logs metrics and the loss plot into."""
    import ray
    from ray.train.torch import TorchConfig, TorchTrainer

    from lf_ray.cluster import ensure_ray
    from lf_ray.data.preprocess import run_preprocess
    from lf_ray.train.worker import train_loop_per_worker

    check_trainable(cfg)
    dataset = run_preprocess(cfg)
    check_model_fits_finetuning(cfg)
    ensure_ray(cfg.ray.ray_init_kwargs)
    run_config = build_run_config(cfg)
    output_dir = Path(cfg.training["output_dir"]).expanduser().resolve()
    if cfg.training.get("overwrite_output_dir"):
        _forget_previous_run(run_config, output_dir)
    scaling = build_scaling_config(cfg.ray, ray.cluster_resources().get("GPU", 0))
    datasets = materialize_datasets(dataset.path)
    loop_config = build_loop_config(cfg, output_dir, use_gpu=scaling.use_gpu, mlflow_run_id=mlflow_run_id)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        scaling_config=scaling,
        run_config=run_config,
        datasets=datasets,
    )
    with _progress(output_dir, enabled=show_progress), worker_errors_as_lf_ray_errors():
        result = trainer.fit()
    return TrainResult(
        output_dir=output_dir,
        run_path=result.path,
        checkpoint_path=result.checkpoint.path if result.checkpoint else None,
        metrics=_final_metrics(output_dir),
        dataset_path=dataset.path,
    )


def materialize_datasets(dataset_path: Path) -> dict[str, Any]:
    """The tokenized splits as Ray Datasets, materialized: on small clusters a streaming read started by
    `fit()` would wait forever behind the workers holding every CPU."""
    import ray.data

    datasets = {DATASET_TRAIN_DIR: ray.data.read_parquet(str(dataset_path / DATASET_TRAIN_DIR)).materialize()}
    if (dataset_path / DATASET_EVAL_DIR).exists():
        datasets[DATASET_EVAL_DIR] = ray.data.read_parquet(str(dataset_path / DATASET_EVAL_DIR)).materialize()
    return datasets


def build_loop_config(
    cfg: LfRayConfig, output_dir: Path, *, use_gpu: bool, mlflow_run_id: str | None = None
) -> dict[str, Any]:
    """What `train_loop_per_worker` receives: the config, where to write, the resolved DeepSpeed config, and
    the MLflow run the workers join (None: they create one when `report_to` asks for MLflow)."""
    loop_config = {"config": cfg.to_dict(), "output_dir": str(output_dir), "deepspeed": None}
    if cfg.training.get("deepspeed"):  # resolved here: workers run elsewhere, where a relative path means nothing
        from lf_ray.train.deepspeed import resolve_deepspeed_config

        loop_config["deepspeed"] = resolve_deepspeed_config(cfg.training["deepspeed"], on_cpu=not use_gpu)
    if mlflow_run_id:
        loop_config["mlflow_run_id"] = mlflow_run_id
    return loop_config


def _final_metrics(output_dir: Path) -> dict[str, Any]:
    """`all_results.json` as rank 0 wrote it (Ray keeps metrics only alongside checkpoints)."""
    try:
        return json.loads((output_dir / "all_results.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _forget_previous_run(run_config: RunConfig, output_dir: Path) -> None:
    """`overwrite_output_dir: true` starts afresh: no resume from the old run or its checkpoints."""
    if "://" not in run_config.storage_path:
        shutil.rmtree(Path(run_config.storage_path) / run_config.name, ignore_errors=True)
    for stale in output_dir.glob("checkpoint-*"):
        shutil.rmtree(stale, ignore_errors=True)
    (output_dir / "trainer_log.jsonl").unlink(missing_ok=True)


class _progress:
    """Print one line per new `trainer_log.jsonl` entry while the worker group trains."""

    def __init__(self, output_dir: Path, enabled: bool) -> None:
        self.path, self.enabled = output_dir / "trainer_log.jsonl", enabled
        self.seen = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> _progress:
        if self.enabled:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.enabled:
            self.thread.join(timeout=5)
            self._print_new()

    def _follow(self) -> None:
        while not self.stop.wait(2.0):
            self._print_new()

    def _print_new(self) -> None:
        from lf_ray.tracking.trainer_log import format_progress, read_trainer_log

        entries = read_trainer_log(self.path) if self.path.exists() else []
        if len(entries) < self.seen:  # a resumed run rewrote the log from its checkpoint's step
            self.seen = 0
        for entry in entries[self.seen :]:
            print(f"[train] {format_progress(entry)}", flush=True)
        self.seen = len(entries)
