"""MLflow runs for training: params, per-step metrics, the loss plot and the trainer log as artifacts.

`MlflowCallback` replaces transformers' own `report_to: mlflow` integration (drop "mlflow" from the
Trainer's `report_to` with `trackers.report_to_without_mlflow`): it writes to lf-ray's store, nests under a
pipeline's parent run, joins the same run when a worker group resumes from a checkpoint, and tags the
run with the stage. mlflow is imported only when a run starts (it costs about a second).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from lf_ray.constants import ENV_MLFLOW_TRACKING_URI, lf_ray_home
from lf_ray.errors import ConfigError
from lf_ray.tracking.plot import plot_loss
from lf_ray.tracking.redaction import without_secrets
from lf_ray.tracking.trainer_log import TRAINER_LOG

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from lf_ray.config import LfRayConfig

DEFAULT_EXPERIMENT = "lf-ray"
RUN_MARKER = "mlflow_run.json"
"""Written into output_dir when a run starts, so a worker group resumed from a checkpoint joins that run."""

TAG_STAGE = "lf_ray.stage"
TAG_FINETUNING_TYPE = "lf_ray.finetuning_type"
TAG_PARENT_RUN = "mlflow.parentRunId"
_PLOTS = ("training_loss.png", "training_eval_loss.png", "training_reward.png")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set, else a SQLite store under LF_RAY_HOME (the plain file store is
    deprecated in MLflow 3, and SQLite works from any process on the machine, Ray workers included)."""
    uri = os.environ.get(ENV_MLFLOW_TRACKING_URI)
    if uri:
        return uri
    db = lf_ray_home() / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


class MlflowCallback(TrainerCallback):
    """Records one MLflow run per training, from the world's main process only.

    A new run is created at train begin, nested under `parent_run_id` when given (in the parent's
    experiment). The run is joined instead when `run_id` is given, or when training resumes
    (global_step > 0) in an output_dir whose `mlflow_run.json` names a run of this store.
    """

    def __init__(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        experiment_name: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        tracking_uri: str | None = None,
    ) -> None:
        self.params = dict(params or {})
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self._client: MlflowClient | None = None
        self._output_dir: Path | None = None

    @classmethod
    def from_config(
        cls,
        cfg: LfRayConfig,
        *,
        experiment_name: str = DEFAULT_EXPERIMENT,
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> MlflowCallback:
        """The callback for a training step: every config key as a param, the stage and finetuning type
        as tags, `ray_run_name` (else the output_dir's name) as the run name."""
        output_dir = cfg.get("output_dir")
        return cls(
            params=cfg.to_dict(),
            experiment_name=experiment_name,
            run_name=cfg.get("ray_run_name") or (Path(output_dir).name if output_dir else None),
            tags={TAG_STAGE: str(cfg.get("stage")), TAG_FINETUNING_TYPE: str(cfg.get("finetuning_type"))},
            parent_run_id=parent_run_id,
            run_id=run_id,
        )

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        from mlflow.tracking import MlflowClient

        self.tracking_uri = self.tracking_uri or tracking_uri()
        self._client = MlflowClient(self.tracking_uri)
        self._output_dir = Path(args.output_dir)
        self.run_id = self.run_id or (self._resumed_run_id() if state.global_step > 0 else None)
        if self.run_id:
            self._client.update_run(self.run_id, status="RUNNING")
            for key, value in self.tags.items():
                self._client.set_tag(self.run_id, key, value)
        else:
            self.run_id = self._create_run()
        self._log_params()
        self._output_dir.mkdir(parents=True, exist_ok=True)
        marker = {"tracking_uri": self.tracking_uri, "run_id": self.run_id}
        (self._output_dir / RUN_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._client is None or not state.is_world_process_zero or not logs:
            return
        log_metrics(self._client, self.run_id, logs, step=state.global_step)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._client is None or not state.is_world_process_zero:
            return
        plot_loss(args.output_dir)
        for name in (*_PLOTS, TRAINER_LOG):
            path = Path(args.output_dir) / name
            if path.exists():
                self._client.log_artifact(self.run_id, str(path))
        self.close("FINISHED")

    def close(self, status: str = "FINISHED") -> None:
        """End the run ("FINISHED", "FAILED" or "KILLED"); the launcher calls it with FAILED on a crash."""
        if self._client is not None and self.run_id:
            self._client.set_terminated(self.run_id, status=status)

    def _create_run(self) -> str:
        assert self._client is not None
        tags = dict(self.tags)
        if self.parent_run_id:
            from mlflow.exceptions import MlflowException

            try:
                parent = self._client.get_run(self.parent_run_id)
            except MlflowException as err:
                raise ConfigError(
                    f"MLflow parent run {self.parent_run_id!r} is not in the store {self.tracking_uri} ({err}); "
                    "pass the run id of an existing run, or no parent to create a top-level run"
                ) from err
            experiment_id = parent.info.experiment_id
            tags[TAG_PARENT_RUN] = self.parent_run_id
        else:
            experiment_id = get_or_create_experiment(self._client, self.experiment_name, self.tracking_uri)
        run = self._client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        return run.info.run_id

    def _resumed_run_id(self) -> str | None:
        assert self._output_dir is not None
        marker = self._output_dir / RUN_MARKER
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return recorded.get("run_id") if recorded.get("tracking_uri") == self.tracking_uri else None

    def _log_params(self) -> None:
        assert self._client is not None
        log_missing_params(self._client, self.run_id, self.params)


def log_missing_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log the params the run lacks (a joined run may have them already; MLflow refuses a changed value), with
    credentials masked (`redaction.SECRET_KEYS`)."""
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

    logged = client.get_run(run_id).data.params
    batch = [
        Param(key, _param_value(value)[:MAX_PARAM_VAL_LENGTH])
        for key, value in without_secrets(params).items()
        if key not in logged
    ]
    for start in range(0, len(batch), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=batch[start : start + MAX_PARAMS_TAGS_PER_BATCH])


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
    """Log the numeric values of `metrics` (others are skipped), with keys MLflow accepts."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(_metric_key(key), float(value), now, step)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    if batch:
        client.log_batch(run_id, metrics=batch)


def get_or_create_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment `name`, created if missing (by a concurrent trial too: the loser reads it).

    With a SQLite store the artifacts go beside the database, not into the process's working directory
    (a Ray worker's is temporary).
    """
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        root = Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / re.sub(r"[^\w.-]", "_", name)
        artifact_location = root.as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _param_value(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _metric_key(key: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", key)
