"""A sweep's MLflow runs in a real SQLite store: one sweep run, one child per trial, final statuses."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from lf_ray.errors import ConfigError
from lf_ray.tracking.sweep_runs import (
    finish_sweep_run,
    finish_trial_run,
    start_sweep_run,
    start_trial_run,
    trial_runs,
)


def test_sweep_and_trial_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    params = {"learning_rate": 1e-3, "tune": '{"num_samples": 2}', "swanlab_api_key": "sk-sweep"}
    sweep = start_sweep_run("sweep-a", params, stage="sft", uri=uri)
    first = start_trial_run(sweep, "t0", {"learning_rate": 0.01, "lora_rank": 8}, uri=uri)
    second = start_trial_run(sweep, "t1", {"learning_rate": 0.001, "lora_rank": 4}, uri=uri)
    assert start_trial_run(sweep, "t0", {"learning_rate": 0.01}, uri=uri) == first  # a PBT restart rejoins its run
    assert trial_runs(sweep, uri=uri) == {"t0": first, "t1": second}

    finish_trial_run(first, {"eval_loss": 1.5, "step": 8}, "completed", uri=uri)
    finish_trial_run(second, {"eval_loss": 2.5}, "stopped", uri=uri)
    table = tmp_path / "tune_results.csv"
    table.write_text("trial_id,eval_loss\nt0,1.5\n")
    finish_sweep_run(sweep, {"eval_loss": 1.5}, [table], uri=uri)

    run = client.get_run(first)
    assert run.data.tags["mlflow.parentRunId"] == sweep and run.data.tags["lf_ray.tune.trial_id"] == "t0"
    assert run.data.params["lora_rank"] == "8" and run.data.metrics["final/eval_loss"] == 1.5
    assert run.info.status == "FINISHED" and client.get_run(second).info.status == "KILLED"
    parent = client.get_run(sweep)
    assert parent.info.status == "FINISHED" and parent.data.metrics["best/eval_loss"] == 1.5
    assert parent.data.tags["lf_ray.stage"] == "sft" and parent.data.params["swanlab_api_key"] == "***"
    assert [artifact.path for artifact in client.list_artifacts(sweep)] == ["tune_results.csv"]


def test_the_sweep_nests_under_a_given_parent_and_a_missing_parent_is_a_clear_error(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pipeline = start_sweep_run("pipeline", {}, stage="sft", uri=uri)
    sweep = start_sweep_run("sweep", {}, stage="sft", parent_run_id=pipeline, uri=uri)
    assert MlflowClient(uri).get_run(sweep).data.tags["mlflow.parentRunId"] == pipeline
    with pytest.raises(ConfigError, match=r"MLflow parent run 'nope' is not in the store"):
        start_sweep_run("sweep", {}, stage="sft", parent_run_id="nope", uri=uri)
