"""MLflow runs from a real Trainer, read back from the SQLite store with MlflowClient."""

from __future__ import annotations

import json

import pytest

from lf_ray.config import build_config
from lf_ray.errors import ConfigError
from lf_ray.tracking.mlflow_tracking import RUN_MARKER, MlflowCallback, tracking_uri
from lf_ray.tracking.trackers import report_to_without_mlflow, wants_mlflow
from lf_ray.tracking.trainer_log import TrainerLogCallback


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def module_client(store_dir):
    """One SQLite store for the module: creating one costs ~5 s (schema migrations)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store_dir / 'mlflow.db'}")
    client.search_experiments()
    return client


@pytest.fixture
def client(module_client, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_client.tracking_uri)
    return module_client


def _config(output_dir, **extra):
    values = {"stage": "sft", "finetuning_type": "lora", "model_name_or_path": "builtin:tiny-llama"}
    return build_config({**values, "output_dir": str(output_dir), "report_to": "mlflow", **extra})


def _artifacts(client, run_id) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)}


def test_tracking_uri_defaults_to_sqlite_under_lf_ray_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LF_RAY_HOME", str(tmp_path))
    assert tracking_uri() == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert (tmp_path / "mlflow").is_dir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri() == "http://mlflow.internal:5000"


def test_report_to_handling():
    assert wants_mlflow("mlflow") and wants_mlflow(["tensorboard", "mlflow"]) and wants_mlflow("all")
    assert not wants_mlflow("none") and not wants_mlflow(None) and not wants_mlflow(["tensorboard"])
    assert report_to_without_mlflow(["tensorboard", "mlflow"]) == ["tensorboard"]
    assert report_to_without_mlflow("mlflow") == ["none"]
    assert "mlflow" not in report_to_without_mlflow("all")


def test_run_has_params_metrics_artifacts_and_tags(tmp_path, train_tiny, client, store_dir):
    out = tmp_path / "sft-lora-demo"
    callback = MlflowCallback.from_config(_config(out), experiment_name="lf-ray-test")
    train_tiny(out, [TrainerLogCallback(), callback])

    run = client.get_run(callback.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "sft-lora-demo"
    assert client.get_experiment(run.info.experiment_id).name == "lf-ray-test"
    params = run.data.params
    assert params["stage"] == "sft" and params["finetuning_type"] == "lora" and params["report_to"] == "mlflow"
    assert params["model_name_or_path"] == "builtin:tiny-llama" and params["output_dir"] == str(out)
    assert run.data.tags["lf_ray.stage"] == "sft" and run.data.tags["lf_ray.finetuning_type"] == "lora"

    loss = client.get_metric_history(callback.run_id, "loss")
    assert [m.step for m in loss] == [1, 2, 3, 4, 5, 6]
    assert [m.step for m in client.get_metric_history(callback.run_id, "eval_loss")] == [3, 6]
    assert {"learning_rate", "grad_norm", "epoch", "train_runtime"} <= run.data.metrics.keys()

    assert _artifacts(client, callback.run_id) == {"training_loss.png", "training_eval_loss.png", "trainer_log.jsonl"}
    # artifacts live beside the SQLite database, not in the working directory
    assert run.info.artifact_uri.startswith((store_dir / "artifacts" / "lf-ray-test").as_uri())
    assert json.loads((out / RUN_MARKER).read_text())["run_id"] == callback.run_id


def test_nested_run_under_a_pipeline_parent(tmp_path, train_tiny, client):
    from lf_ray.tracking.mlflow_tracking import get_or_create_experiment

    experiment_id = get_or_create_experiment(client, "pipelines", client.tracking_uri)
    parent = client.create_run(experiment_id, run_name="pipeline-run")
    callback = MlflowCallback.from_config(
        _config(tmp_path / "out", ray_run_name="train"), parent_run_id=parent.info.run_id
    )
    train_tiny(tmp_path / "out", [TrainerLogCallback(), callback], max_steps=3)

    child = client.get_run(callback.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.experiment_id == experiment_id and child.info.run_name == "train"
    found = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in found] == [callback.run_id]


def test_resumed_training_joins_its_run(tmp_path, train_tiny, client):
    out = tmp_path / "out"
    first = MlflowCallback.from_config(_config(out))
    train_tiny(out, [TrainerLogCallback(), first])
    resumed = MlflowCallback.from_config(_config(out))
    train_tiny(out, [TrainerLogCallback(), resumed], resume_from=str(out / "checkpoint-3"))

    assert resumed.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(first.run_id, "loss")]
    assert sorted(set(steps)) == [1, 2, 3, 4, 5, 6]
    # a fresh start in the same folder is a new run
    fresh = MlflowCallback.from_config(_config(out))
    train_tiny(out, [TrainerLogCallback(), fresh], max_steps=3)
    assert fresh.run_id != first.run_id


def test_missing_parent_run_is_a_config_error(tmp_path, train_tiny, client):
    callback = MlflowCallback(params={"stage": "sft"}, parent_run_id="0123456789abcdef")
    with pytest.raises(ConfigError, match="parent run '0123456789abcdef' is not in the store"):
        train_tiny(tmp_path, [callback], max_steps=1)


def test_credentials_are_logged_masked(client):
    from lf_ray.tracking.mlflow_tracking import get_or_create_experiment, log_missing_params

    run_id = client.create_run(get_or_create_experiment(client, "masked", client.tracking_uri)).info.run_id
    params = {"swanlab_api_key": "sk-123", "swanlab_lark_webhook_url": "https://hook/abc", "swanlab_lark_secret": None}
    log_missing_params(client, run_id, {**params, "swanlab_project": "tiny"})
    logged = client.get_run(run_id).data.params
    assert logged == {
        "swanlab_api_key": "***",
        "swanlab_lark_webhook_url": "***",
        "swanlab_lark_secret": "None",  # not set: nothing to hide
        "swanlab_project": "tiny",
    }


def test_non_main_processes_record_nothing(tmp_path, client):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    state = TrainerState(max_steps=2)
    state.is_world_process_zero = False
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    callback = MlflowCallback(params={"stage": "sft"})
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.0})
    callback.on_train_end(args, state, TrainerControl())
    assert callback.run_id is None and callback.tracking_uri is None
    assert not (tmp_path / RUN_MARKER).exists()
