"""One trial of a sweep: a Tune trainable that builds and fits a Ray Train `TorchTrainer`.

This is Ray Train v2's Train-inside-Tune pattern (`Tuner(trainer)` is deprecated): the trainable is a small
driver (0.1 CPU by default) and the worker group is a normal Train run with its own placement group. It is
a class trainable rather than a function so that it has a `cleanup` hook: when a scheduler stops a trial
early, the trial aborts its Train run, which removes the worker group's placement group at once (a killed
function trainable would leave that to Ray Train's placement-group cleaner, which cannot always reach the
cluster, e.g. beside other Ray instances on one machine). Metrics reach the trial through a Train
`UserCallback` that forwards every report; the trial keeps the latest value of each metric (an eval metric
logged at step 4 is still the newest at the final report) and returns a result to Tune only once it holds
the sweep's metric. Under PBT the trial saves and loads Tune checkpoints (the adapter or model weights).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune

from lf_ray.errors import TrainError

if TYPE_CHECKING:
    from lf_ray.tune.resources import TrialPlan

_DONE = "__lf_ray_trial_done__"
_HF_CHECKPOINT = "checkpoint"  # RayTrainReportCallback.CHECKPOINT_NAME
_OPTIMIZER_STATE = ("optimizer.pt", "scheduler.pt")


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares: the base config, the tokenized dataset, where trials write, the resources plan,
    the MLflow sweep run."""

    base: dict[str, Any]
    dataset_path: str
    trials_dir: str
    train_storage: str
    plan: TrialPlan
    metric: str
    cluster_gpus: float
    forward_checkpoints: bool
    mlflow_run_id: str | None
    tracking_uri: str | None


def trial_config_values(context: TrialContext, sampled: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """The flat config of one trial: the base with the sampled values, its own output folder and worker group.

    `lora_alpha` left at its default (`lora_rank * 2`) follows a sampled `lora_rank`; MLflow is always on, so
    each trial's steps land in its child run.
    """
    values = {**context.base, **sampled}
    base_rank, base_alpha = context.base.get("lora_rank", 8), context.base.get("lora_alpha")
    if "lora_rank" in sampled and "lora_alpha" not in sampled and base_alpha in (None, base_rank * 2):
        values["lora_alpha"] = None
    report_to = values.get("report_to") or []
    report_to = [report_to] if isinstance(report_to, str) else list(report_to)
    values.update(
        output_dir=str(Path(context.trials_dir) / trial_id),
        overwrite_output_dir=False,
        ray_run_name=f"{trial_id}-{uuid.uuid4().hex[:6]}",  # a PBT restart starts a new Train run
        ray_storage_path=context.train_storage,
        ray_num_workers=context.plan.num_workers,
        resources_per_worker=dict(context.plan.resources_per_worker),
        report_to=[name for name in report_to if name not in ("none", "mlflow")] + ["mlflow"],
        tune=None,
    )
    return values


class LfRayTrial(tune.Trainable):
    """The Tune trainable of one trial; `setup` receives the shared `context` via `tune.with_parameters`, and
    training starts at the first `step` (after a PBT `load_checkpoint`)."""

    def setup(self, config: dict[str, Any], context: TrialContext) -> None:
        self.context = context
        self.start_from: str | None = None
        self.run: TrialRun | None = None

    def step(self) -> dict[str, Any]:
        if self.run is None:
            self.run = TrialRun.start(self.context, dict(self.config), self.trial_id, self.start_from)
        return self.run.next_result()

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """PBT asks for a checkpoint to clone: the latest Train checkpoint's weights and trainer state."""
        if self.run is None or self.run.checkpoint is None:
            raise TrainError(f"trial {self.trial_id} has no checkpoint yet to save; lower save_steps")
        with self.run.checkpoint.as_directory() as directory:
            shutil.copytree(Path(directory) / _HF_CHECKPOINT, Path(checkpoint_dir) / _HF_CHECKPOINT)

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        """Start from a (cloned) checkpoint's weights, without its optimizer and LR scheduler state, so the
        perturbed hyperparameters take effect."""
        target = Path(self.context.trials_dir) / self.trial_id / f"pbt-start-{uuid.uuid4().hex[:6]}"
        shutil.copytree(Path(checkpoint_dir) / _HF_CHECKPOINT, target)
        for name in _OPTIMIZER_STATE:
            (target / name).unlink(missing_ok=True)
        self.start_from = str(target)

    def cleanup(self) -> None:
        if self.run is not None:
            self.run.abort()


class TrialRun:
    """A trial's Train run, fitting in a thread, and the reports it forwards."""

    def __init__(self, trainer: Any, queue: Any, metric: str) -> None:
        self.queue, self.metric = queue, metric
        self.latest: dict[str, Any] = {}
        self.checkpoint: Any = None
        self.controller: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.thread = threading.Thread(target=self._fit, args=(trainer,), name="lf-ray-trial-fit", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls, context: TrialContext, sampled: dict[str, Any], trial_id: str, start_from: str | None) -> TrialRun:
        """Build the trial's config and TorchTrainer (the same pieces as `lf-ray train`), and start fitting."""
        from ray.train.torch import TorchConfig, TorchTrainer
        from ray.util.queue import Queue

        from lf_ray.config import prepare_config
        from lf_ray.tracking.sweep_runs import start_trial_run
        from lf_ray.train.launcher import build_loop_config, build_run_config, build_scaling_config
        from lf_ray.train.worker import train_loop_per_worker

        cfg = prepare_config(None, base=trial_config_values(context, sampled, trial_id))
        if start_from:
            cfg.training["resume_from_checkpoint"] = start_from
        run_id = None
        if context.mlflow_run_id:
            params = cfg.to_dict(non_default_only=True)
            run_id = start_trial_run(context.mlflow_run_id, trial_id, params, uri=context.tracking_uri)
        queue = Queue(actor_options={"num_cpus": 0})
        scaling = build_scaling_config(cfg.ray, context.cluster_gpus)
        run_config = build_run_config(cfg)
        run_config.callbacks = [_report_forwarder(queue)]
        output_dir = Path(cfg.training["output_dir"])
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=build_loop_config(
                cfg, output_dir, context.dataset_path, use_gpu=scaling.use_gpu, mlflow_run_id=run_id
            ),
            torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
            scaling_config=scaling,
            run_config=run_config,
        )
        return cls(trainer, queue, context.metric)

    def _fit(self, trainer: Any) -> None:
        from lf_ray.train.launcher import worker_errors_as_lf_ray_errors

        try:
            with worker_errors_as_lf_ray_errors():
                trainer.fit()
        except BaseException as err:  # raised in the trainable's thread by next_result
            self.error = err
        finally:
            self.queue.put(_DONE)

    def next_result(self) -> dict[str, Any]:
        """The next report that holds the metric (latest value of every metric); `done` once training ended."""
        while not self.finished:
            item = self.queue.get()
            if item == _DONE:
                self.finished = True
                break
            metrics, checkpoint, self.controller = item
            self.latest.update(metrics)
            if checkpoint is not None:
                self.checkpoint = checkpoint
                self.latest["checkpoint_path"] = checkpoint.path
            if self.metric in self.latest:
                return dict(self.latest)
        self.thread.join()
        if self.error is not None:
            raise self.error
        if self.metric not in self.latest:
            raise TrainError(
                f"the trial finished without reporting `{self.metric}` "
                f"(it reported {sorted(self.latest) or 'nothing'}); eval_* metrics need eval_strategy and "
                "val_size, and reports happen at each save (save_steps)"
            )
        return {**self.latest, "done": True}

    def abort(self) -> None:
        """Stop the Train run now (the scheduler stopped the trial): its workers and placement group go."""
        if not self.thread.is_alive():
            return
        if self.controller is not None:
            # the controller exits inside abort(), so the call ends in an actor error: either way it is gone
            with contextlib.suppress(Exception):
                ray.get(self.controller.abort.remote(), timeout=60)
        self.thread.join(timeout=10)


def _report_forwarder(queue: Any) -> Any:
    """A Train callback (it runs in the Train controller) that sends rank 0's reports, the checkpoint and the
    controller's handle (to abort the run) to the trial."""
    from ray.train import UserCallback

    class ReportForwarder(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            controller = ray.get_runtime_context().current_actor
            queue.put((dict(metrics[0]) if metrics else {}, checkpoint, controller))

    return ReportForwarder()
