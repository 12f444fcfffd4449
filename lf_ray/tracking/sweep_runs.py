"""MLflow runs of a sweep: one parent run for the sweep, one child run per trial.

The driver opens the sweep run; each trial opens (or, restarted by PBT, reopens) its child run and hands
its id to the worker group, whose `MlflowCallback` logs the per-step metrics into it. When the sweep ends
the driver writes each trial's final metrics and status, and the results table, to these runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lf_ray.errors import ConfigError
from lf_ray.tracking.mlflow_tracking import DEFAULT_EXPERIMENT, TAG_STAGE, get_or_create_experiment, tracking_uri

TAG_TRIAL_ID = "lf_ray.tune.trial_id"
TAG_TRIAL_STATUS = "lf_ray.tune.status"
TAG_SWEEP = "lf_ray.tune.sweep"
_PARENT_TAG = "mlflow.parentRunId"
_STATUS = {"completed": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}


def start_sweep_run(
    name: str,
    params: Mapping[str, Any],
    *,
    stage: str,
    parent_run_id: str | None = None,
    uri: str | None = None,
) -> str:
    """A run for the whole sweep (nested under `parent_run_id`, e.g. a pipeline's run, when given)."""
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    client = MlflowClient(uri)
    tags = {TAG_SWEEP: "true", TAG_STAGE: stage}
    if parent_run_id:
        from mlflow.exceptions import MlflowException

        try:
            experiment_id = client.get_run(parent_run_id).info.experiment_id
        except MlflowException as err:
            raise ConfigError(
                f"MLflow parent run {parent_run_id!r} is not in the store {uri} ({err}); pass the run id of an "
                "existing run, or no parent to create a top-level sweep run"
            ) from err
        tags[_PARENT_TAG] = parent_run_id
    else:
        experiment_id = get_or_create_experiment(client, DEFAULT_EXPERIMENT, uri)
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    _log_params(client, run_id, params)
    return run_id


def start_trial_run(sweep_run_id: str, trial_id: str, params: Mapping[str, Any], *, uri: str | None = None) -> str:
    """The child run of a trial: created on its first start, the same run when PBT restarts the trial."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    sweep = client.get_run(sweep_run_id)
    existing = client.search_runs(
        [sweep.info.experiment_id],
        filter_string=f"tags.`{_PARENT_TAG}` = '{sweep_run_id}' and tags.`{TAG_TRIAL_ID}` = '{trial_id}'",
    )
    if existing:
        return existing[0].info.run_id
    tags = {_PARENT_TAG: sweep_run_id, TAG_TRIAL_ID: trial_id, TAG_STAGE: sweep.data.tags.get(TAG_STAGE, "")}
    run_id = client.create_run(sweep.info.experiment_id, run_name=trial_id, tags=tags).info.run_id
    _log_params(client, run_id, params)
    return run_id


def trial_runs(sweep_run_id: str, *, uri: str | None = None) -> dict[str, str]:
    """trial id → child run id, for the trials of a sweep run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    sweep = client.get_run(sweep_run_id)
    runs = client.search_runs([sweep.info.experiment_id], filter_string=f"tags.`{_PARENT_TAG}` = '{sweep_run_id}'")
    return {run.data.tags[TAG_TRIAL_ID]: run.info.run_id for run in runs if TAG_TRIAL_ID in run.data.tags}


def finish_trial_run(run_id: str, metrics: Mapping[str, Any], status: str, *, uri: str | None = None) -> None:
    """Final metrics (prefixed `final/`), the trial's status as a tag, and the run ended accordingly."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    _log_metrics(client, run_id, metrics, prefix="final/")
    client.set_tag(run_id, TAG_TRIAL_STATUS, status)
    client.set_terminated(run_id, status=_STATUS.get(status, "FINISHED"))


def finish_sweep_run(
    run_id: str, best: Mapping[str, Any], artifacts: list[Path], *, failed: bool = False, uri: str | None = None
) -> None:
    """The best trial's metrics (prefixed `best/`) and the results table files on the sweep run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri or tracking_uri())
    _log_metrics(client, run_id, best, prefix="best/")
    for path in artifacts:
        if path.exists():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def _log_metrics(client: Any, run_id: str, metrics: Mapping[str, Any], prefix: str) -> None:
    from mlflow.entities import Metric

    from lf_ray.tracking.mlflow_tracking import _metric_key

    numbers = [
        Metric(_metric_key(f"{prefix}{key}"), float(value), 0, 0)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    if numbers:
        client.log_batch(run_id, metrics=numbers)


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

    from lf_ray.tracking.mlflow_tracking import _param_value
    from lf_ray.tracking.redaction import without_secrets

    items = [
        Param(str(key), _param_value(value)[:MAX_PARAM_VAL_LENGTH]) for key, value in without_secrets(params).items()
    ]
    for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])
