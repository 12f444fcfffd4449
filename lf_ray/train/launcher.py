"""The train step on Ray Train: a `TorchTrainer` worker group per stage, with checkpoints and fault tolerance.

The driver makes sure the tokenized dataset exists (the preprocess step, reused when cached), builds the
ScalingConfig / RunConfig / CheckpointConfig / FailureConfig from the config's Ray keys, and hands each
worker its shard of the Parquet. A run keeps its name between invocations, so Ray Train restores it from
its last checkpoint unless `overwrite_output_dir` is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray import storage
from lf_ray.cluster import cluster_address
from lf_ray.errors import ConfigError, LfRayError, StorageError, TrainError
from lf_ray.model.quantization import bitsandbytes_missing
from lf_ray.stages import STAGES

if TYPE_CHECKING:
    import pyarrow.fs
    from ray.train import RunConfig, ScalingConfig

    from lf_ray.config import LfRayConfig, RayArguments


@dataclass
class TrainResult:
    output_dir: str  # a local path or a URI
    run_path: str
    checkpoint_path: str | None
    metrics: dict[str, Any]
    dataset_path: str


def worker_resources(ray_args: RayArguments, cluster_gpus: float) -> dict[str, float]:
    """`resources_per_worker`, or one GPU per worker when the cluster has GPUs, else one CPU."""
    if ray_args.resources_per_worker:
        return {key: float(value) for key, value in ray_args.resources_per_worker.items()}
    return {"GPU": 1.0} if cluster_gpus > 0 else {"CPU": 1.0}


def gpus_missing(ray_args: RayArguments, cluster_gpus: float) -> str | None:
    """The message when the workers ask for GPUs that a cluster with `cluster_gpus` GPUs does not have."""
    resources = worker_resources(ray_args, cluster_gpus)
    if resources.get("GPU", 0) > 0 and cluster_gpus <= 0:
        return (
            f"resources_per_worker asks for GPUs ({resources}) but the Ray cluster has none; "
            "add GPU nodes, or set resources_per_worker: {CPU: 1} to train on CPUs"
        )
    return None


def build_scaling_config(ray_args: RayArguments, cluster_gpus: float) -> ScalingConfig:
    from ray.train import ScalingConfig

    problem = gpus_missing(ray_args, cluster_gpus)
    if problem:
        raise ConfigError(problem)
    resources = worker_resources(ray_args, cluster_gpus)
    use_gpu = resources.get("GPU", 0) > 0
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
    return f"lf_ray_{cfg.finetuning.stage}_{output_slug(cfg)}"


def output_slug(cfg: LfRayConfig) -> str:
    """The last three parts of `output_dir` (a path or a URI), as a name Ray accepts."""
    output = storage.resolve(cfg.training.get("output_dir") or "output")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(output.rstrip("/").split("/")[-3:]))


def storage_path(cfg: LfRayConfig) -> str:
    """Where Ray Train persists runs: an absolute local path, or a URI. LLaMA-Factory's form (`ray_storage_path`
    + `ray_storage_filesystem: s3|gs|gcs`) becomes the same URI (`s3://bucket/x`)."""
    path, name = cfg.ray.ray_storage_path, cfg.ray.ray_storage_filesystem
    if name:
        scheme = "gs" if name == "gcs" else name
        given = path.split("://", 1)[0] if storage.is_uri(path) else scheme
        if ("gs" if given == "gcs" else given) != scheme:
            raise ConfigError(
                f"ray_storage_path `{path}` does not match ray_storage_filesystem `{name}`; "
                f"write it as {name}://<bucket>/<path>, or drop ray_storage_filesystem"
            )
        path = path if storage.is_uri(path) else f"{scheme}://{path.lstrip('/')}"
    return storage.resolve(path)


def ray_storage(cfg: LfRayConfig) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """`storage_path` as Ray Train and Tune take it: a local path alone, or an object store's path within lf-ray's
    filesystem for it (endpoint, credentials and timeouts from the environment)."""
    location = storage_path(cfg)
    if not storage.is_uri(location):
        return location, None
    filesystem, path = storage.filesystem(location)
    return path, filesystem


def build_run_config(cfg: LfRayConfig) -> RunConfig:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig

    path, filesystem = ray_storage(cfg)
    return RunConfig(
        name=default_run_name(cfg),
        storage_path=path,
        storage_filesystem=filesystem,
        checkpoint_config=CheckpointConfig(num_to_keep=cfg.training.get("save_total_limit")),
        failure_config=FailureConfig(max_failures=cfg.ray.max_failures),
    )


def check_trainable(cfg: LfRayConfig, *, require_inputs: bool = False) -> None:
    """Raise one ConfigError listing every `training_problems(cfg)`; return quietly when there is none."""
    problems = training_problems(cfg, require_inputs=require_inputs)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"{count} in {cfg.source or 'the config'} would stop training:\n{listing}")


def training_problems(cfg: LfRayConfig, *, require_inputs: bool = False) -> list[str]:
    """Every problem that would stop a run of `cfg` and that shows without training, beyond what `validate_config`
    sees: files, the model's modules, the cluster's GPUs. Nothing is tokenized and no Ray is started.

    `require_inputs=False` skips the model check while the model or an adapter is a local folder that does not
    exist yet (in a pipeline plan, an earlier step writes it); a run checks with True."""
    problems = _output_problems(cfg) + _resume_problems(cfg) + _reward_problems(cfg)
    try:
        cluster_gpus = reachable_cluster_gpus(cfg)
    except ConfigError as err:
        problems.append(str(err))
        cluster_gpus = None
    problems += _deepspeed_problems(cfg, cluster_gpus)
    problems += _gpu_only_problems(cfg, cluster_gpus)
    problems += _rollout_problems(cfg, cluster_gpus)
    if problem := bitsandbytes_missing(cfg):
        problems.append(problem)
    from lf_ray.tracking.trackers import tracker_packages_missing  # lf_ray.tracking imports transformers

    problems += tracker_packages_missing(cfg)
    if cluster_gpus is not None and (problem := gpus_missing(cfg.ray, cluster_gpus)):
        problems.append(problem)
    if require_inputs or not _inputs_not_written_yet(cfg):
        problems += _model_problems(cfg)
    return problems


def training_checks(cfg: LfRayConfig) -> list[str]:
    """What `training_problems(cfg)` looks at for this config, for the dry run to say what passed."""
    checks = ["stage", "output_dir", *(key for key in ("resume_from_checkpoint", "deepspeed") if cfg.training.get(key))]
    checks.append(f"{cfg.finetuning.finetuning_type} settings against the model's modules")
    if address := cluster_address(cfg.ray.ray_init_kwargs):
        checks.append(f"GPUs of the Ray cluster at {address}")
    return checks


def _output_problems(cfg: LfRayConfig) -> list[str]:
    if not cfg.training.get("output_dir"):
        return [
            "training needs `output_dir` (where the adapter or model, logs and plots go), which is not set; "
            "set it, e.g. `output_dir: saves/my-model/lora/sft`"
        ]
    return []


def _resume_problems(cfg: LfRayConfig) -> list[str]:
    checkpoint = cfg.training.get("resume_from_checkpoint")
    if checkpoint and not (Path(checkpoint).expanduser() / "trainer_state.json").is_file():
        return [
            f"resume_from_checkpoint `{checkpoint}` is not a readable checkpoint (no trainer_state.json in it); "
            "point it at a checkpoint-N folder, or remove it to resume from the run's latest checkpoint"
        ]
    return []


def _deepspeed_problems(cfg: LfRayConfig, cluster_gpus: float | None) -> list[str]:
    """The file exists and holds a JSON object; when the workers surely train on CPUs, also that it runs there."""
    from lf_ray.train.deepspeed import resolve_deepspeed_config

    setting = cfg.training.get("deepspeed")
    if not setting:
        return []
    known = cluster_gpus is not None or bool(cfg.ray.resources_per_worker)  # else: GPUs if the cluster has them
    on_cpu = known and worker_resources(cfg.ray, cluster_gpus or 0.0).get("GPU", 0) <= 0
    try:
        resolved = resolve_deepspeed_config(setting, on_cpu=on_cpu)
    except ConfigError as err:
        return [str(err)]
    if cfg.model.quantization_bit is not None and (resolved.get("zero_optimization") or {}).get("stage") == 3:
        return [
            f"`quantization_bit: {cfg.model.quantization_bit}` with DeepSpeed ZeRO-3 (`deepspeed: {setting}`): lf-ray "
            "does not shard a quantized base model; use a ZeRO-2 config, or no `deepspeed`, for QLoRA"
        ]
    return []


GPU_ONLY_KEYS = ("enable_liger_kernel", "use_unsloth_gc")
"""Speed-ups that only act on CUDA devices: Liger's Triton kernels, activations offloaded from GPU memory."""


def _gpu_only_problems(cfg: LfRayConfig, cluster_gpus: float | None) -> list[str]:
    """GPU-only keys on workers that train on CPUs (they would do nothing), or without their package."""
    import importlib.util

    asked = [key for key in GPU_ONLY_KEYS if getattr(cfg.model, key)]
    if not asked:
        return []
    problems = []
    if cluster_gpus is None:  # the run starts a Ray on this machine
        import torch

        cluster_gpus = float(torch.cuda.device_count())
    if worker_resources(cfg.ray, cluster_gpus).get("GPU", 0) <= 0:
        keys = ", ".join(f"`{key}`" for key in asked)
        problems.append(
            f"{keys} speed up training on CUDA GPUs, but the workers of this run train on CPUs (the Ray cluster "
            f"has {cluster_gpus:g} GPUs, resources_per_worker {cfg.ray.resources_per_worker}); remove "
            f"{'it' if len(asked) == 1 else 'them'} for CPU runs, or train on GPU workers"
        )
    if cfg.model.enable_liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        problems.append("`enable_liger_kernel` needs the liger-kernel package: `pip install liger-kernel`")
    return problems


def _rollout_problems(cfg: LfRayConfig, cluster_gpus: float | None) -> list[str]:
    """grpo's vLLM rollouts (`train.arguments.rollout_values`) on workers without CUDA, or without vLLM."""
    import importlib.util

    from lf_ray.train.arguments import rollout_values

    if cfg.finetuning.stage != "grpo" or not rollout_values(cfg):
        return []
    asked = "`grpo_vllm_server`" if cfg.finetuning.grpo_vllm_server else "`infer_backend: vllm`"
    if cluster_gpus is None:  # the run starts a Ray on this machine
        import torch

        cluster_gpus = float(torch.cuda.device_count())
    problems = []
    if worker_resources(cfg.ray, cluster_gpus).get("GPU", 0) <= 0:
        problems.append(
            f"{asked} samples grpo's completions with vLLM, which needs CUDA workers (the weights go to vLLM over "
            f"NCCL), but the workers of this run train on CPUs (the Ray cluster has {cluster_gpus:g} GPUs); remove "
            "it to sample with transformers' generate, or train on GPU workers"
        )
    if not cfg.finetuning.grpo_vllm_server and importlib.util.find_spec("vllm") is None:
        problems.append(f"{asked} needs vLLM on every training worker: `pip install vllm`")
    return problems


def _reward_problems(cfg: LfRayConfig) -> list[str]:
    """grpo / ppo without a reward, or with `reward_funcs` that cannot be imported or called (the user's modules
    are imported here, on the driver, as they will be on every worker)."""
    from lf_ray.train.rewards import resolve

    ft = cfg.finetuning
    if ft.stage not in ("grpo", "ppo"):
        return []
    if not ft.reward_funcs and not ft.reward_model:  # not a rule: a preprocess step of the prompts has none
        return [
            f"`stage: {ft.stage}` needs something to score completions: set `reward_funcs` (built-ins exact_match, "
            "numeric_match, format_match, length_penalty, or `module:function`) and/or `reward_model`"
        ]
    problems = []
    for name in ft.reward_funcs or []:
        try:
            resolve(name, cfg.finetuning)
        except ConfigError as err:
            problems.append(str(err))
    return problems


def _model_problems(cfg: LfRayConfig) -> list[str]:
    """What `check_model_fits_finetuning` finds first (LoRA/freeze targets, adapters, the model folder), if any."""
    try:
        check_model_fits_finetuning(cfg)
    except LfRayError as err:
        return [str(err)]
    except (OSError, ValueError) as err:  # transformers: no config.json there, unknown model_type, hub unreachable
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return [
            f"model_name_or_path `{cfg.model.model_name_or_path}` cannot be read to check the finetuning settings: "
            f"{reason}; check the path or hub id and the network, or set `trust_remote_code: true` if it needs it"
        ]
    return []


def _inputs_not_written_yet(cfg: LfRayConfig) -> bool:
    """Whether the model or an adapter is a local path or a URI that does not exist (yet)."""
    from lf_ray.constants import BUILTIN_PREFIX
    from lf_ray.model.loader import looks_like_path

    names = [cfg.model.model_name_or_path or "", *(cfg.model.adapter_name_or_path or [])]
    paths = [name for name in names if not name.startswith(BUILTIN_PREFIX)]
    return any(
        not storage.exists(name)
        if storage.is_uri(name)
        else looks_like_path(name) and not Path(name).expanduser().exists()
        for name in paths
    )


def reachable_cluster_gpus(cfg: LfRayConfig) -> float | None:
    """The GPUs of the Ray cluster a run would join, when one is reachable without starting a local Ray."""
    from lf_ray.cluster import cluster_resources

    resources = cluster_resources(cfg.ray.ray_init_kwargs)
    return None if resources is None else float(resources.get("GPU", 0))


def check_model_fits_finetuning(cfg: LfRayConfig) -> None:
    """LoRA targets, freeze layers and adapter paths checked on a weightless copy of the model, on the driver."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from lf_ray.model.adapters import check_finetuning
    from lf_ray.model.loader import hub_location, resolve_model_path
    from lf_ray.model.preparation import configure_moe

    name = cfg.model.model_name_or_path
    if storage.is_uri(name) and not cfg.model.trust_remote_code:  # the skeleton needs config.json, not the weights
        path = str(storage.localize(storage.join(name, "config.json")))
    else:
        path = resolve_model_path(name, **hub_location(cfg))
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    reward = STAGES[cfg.finetuning.stage].model_head == "reward"
    model_class = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    with init_empty_weights():
        skeleton = model_class.from_config(config, trust_remote_code=cfg.model.trust_remote_code)
    check_finetuning(skeleton, cfg)
    configure_moe(config, cfg)  # a router loss on a model without a router is refused here, not on a worker


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
        causes = list(failures.values()) or [getattr(err, "controller_failure", err)]
        # one rank may fail on the store and another only on what it left behind (a checkpoint it could not fetch)
        if endpoint := next(filter(None, map(storage.unreachable_endpoint, causes)), None):
            raise StorageError(
                f"training stopped: the run's storage became unreachable while Ray Train used it: {endpoint}. The "
                "checkpoints committed before are kept. Fix: bring the storage back (or point AWS_ENDPOINT_URL at "
                "one that answers), then run the same command again: it resumes from the latest committed checkpoint"
            ) from None
        first = causes[0]
        summary = str(first).strip().splitlines()[-1] if str(first).strip() else type(first).__name__
        where = f"worker(s) {sorted(failures)}" if failures else "Ray Train's controller"
        raise TrainError(
            f"training failed on {where}: {summary}; the full tracebacks are above and in the Ray logs "
            "(/tmp/ray/session_latest/logs)"
        ) from err


def run_training(cfg: LfRayConfig, *, show_progress: bool = True, mlflow_run_id: str | None = None) -> TrainResult:
    """Preprocess (or reuse), then fit a TorchTrainer; outputs land in `output_dir` in LLaMA-Factory's layout. The
    caller commits them (the train step's manifest: `pipeline.executor.run_step`).

    `mlflow_run_id`: an MLflow run (a pipeline step's) that rank 0 logs metrics and the loss plot into."""
    import ray
    from ray.train.torch import TorchConfig, TorchTrainer

    from lf_ray.cluster import ensure_ray
    from lf_ray.data.preprocess import run_preprocess
    from lf_ray.train.worker import train_loop_per_worker

    check_trainable(cfg, require_inputs=True)  # everything cheap, before tokenizing or starting Ray
    dataset = run_preprocess(cfg)
    if cfg.data.streaming and show_progress:
        print(
            f"[train] streaming: true: the sources were read {_READ_BY[dataset.manifest.get('read', 'driver')]} and "
            "each worker streams its share of the artifact; training starts once the artifact is written (lf-ray "
            "does not yet overlap the two)",
            flush=True,
        )
    output_dir = storage.resolve(cfg.training["output_dir"])
    ensure_ray(cfg.ray.ray_init_kwargs)
    run_config = build_run_config(cfg)
    if cfg.training.get("overwrite_output_dir"):
        _forget_previous_run(cfg, run_config, output_dir)
    scaling = build_scaling_config(cfg.ray, ray.cluster_resources().get("GPU", 0))
    loop_config = build_loop_config(cfg, output_dir, dataset.path, use_gpu=scaling.use_gpu, mlflow_run_id=mlflow_run_id)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        scaling_config=scaling,
        run_config=run_config,
    )
    with _progress(written_locally(output_dir), enabled=show_progress), worker_errors_as_lf_ray_errors():
        result = trainer.fit()
    outputs = {
        "run_path": result.path,
        "checkpoint_path": result.checkpoint.path if result.checkpoint else None,
        "dataset_path": dataset.path,
    }
    return TrainResult(output_dir, **outputs, metrics=_final_metrics(output_dir))


_READ_BY = {"distributed": "by Ray tasks", "driver": "by the driver (a hub dataset, not files)"}


def written_locally(output_dir: str) -> Path:
    """Where rank 0 writes the outputs: `output_dir` itself, or for a URI a node-local folder it uploads at the end."""
    return storage.local_mirror(output_dir) if storage.is_uri(output_dir) else Path(output_dir)


def build_loop_config(
    cfg: LfRayConfig, output_dir: str, dataset_path: str, *, use_gpu: bool, mlflow_run_id: str | None = None
) -> dict[str, Any]:
    """What `train_loop_per_worker` receives: the config, where to write, the artifact each worker streams its
    share from, the resolved DeepSpeed config, and the MLflow run the workers join (None: they create one when
    `report_to` asks for MLflow)."""
    # the config is validated once, here; it pickles
    if cfg.get("profiler_output_dir"):  # workers run in Ray's working directory, where a relative path means nothing
        profiler_dir = storage.resolve(cfg.get("profiler_output_dir"))
        cfg = dataclasses.replace(cfg, training={**cfg.training, "profiler_output_dir": profiler_dir})
    cfg = _tracker_dirs_resolved(cfg)
    loop_config = {"config": cfg, "output_dir": output_dir, "dataset_path": dataset_path, "deepspeed": None}
    if cfg.training.get("deepspeed"):  # resolved here: workers run elsewhere, where a relative path means nothing
        from lf_ray.train.deepspeed import resolve_deepspeed_config

        loop_config["deepspeed"] = resolve_deepspeed_config(cfg.training["deepspeed"], on_cpu=not use_gpu)
    if mlflow_run_id:
        loop_config["mlflow_run_id"] = mlflow_run_id
    return loop_config


def _tracker_dirs_resolved(cfg: LfRayConfig) -> LfRayConfig:
    """`cfg` with TensorBoard's `logging_dir` and SwanLab's `swanlab_logdir` absolute, resolved against the driver's
    working directory as the user meant them (the workers run in Ray's)."""
    if cfg.training.get("logging_dir"):
        cfg = dataclasses.replace(
            cfg, training={**cfg.training, "logging_dir": storage.resolve(cfg.training["logging_dir"])}
        )
    if cfg.finetuning.swanlab_logdir:
        finetuning = dataclasses.replace(cfg.finetuning, swanlab_logdir=storage.resolve(cfg.finetuning.swanlab_logdir))
        cfg = dataclasses.replace(cfg, finetuning=finetuning)
    return cfg


def _final_metrics(output_dir: str) -> dict[str, Any]:
    """`all_results.json` as rank 0 wrote it (Ray keeps metrics only alongside checkpoints)."""
    try:
        return json.loads(storage.read_text(storage.join(output_dir, "all_results.json")))
    except (OSError, ValueError, storage.StorageError):
        return {}


def _forget_previous_run(cfg: LfRayConfig, run_config: RunConfig, output_dir: str) -> None:
    """`overwrite_output_dir: true` starts afresh: no resume from the old run or its checkpoints."""
    storage.delete(storage.join(storage_path(cfg), run_config.name))
    local = written_locally(output_dir)
    for stale in local.glob("checkpoint-*"):
        shutil.rmtree(stale, ignore_errors=True)
    (local / "trainer_log.jsonl").unlink(missing_ok=True)


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
