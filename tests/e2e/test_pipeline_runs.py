"""Whole pipelines on a real local Ray: concurrency, the cache, forcing, failures and MLflow lineage.

One run of pipelines/sft_lora.yaml (shortened) is shared by the module; later tests re-run it and check what
executes again, from the artifacts' manifests and the run records.
"""

from __future__ import annotations

import copy
import json
import socket
from datetime import datetime
from pathlib import Path

import pytest

from lf_ray.config import read_config_file
from lf_ray.pipeline.executor import run_pipeline
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline

pytestmark = pytest.mark.usefixtures("ray_session")
ROOT = Path(__file__).resolve().parents[2]


def sft_lora(storage: Path) -> dict:
    raw = read_config_file(ROOT / "pipelines" / "sft_lora.yaml")
    raw["storage_path"] = str(storage)
    raw["steps"][1]["with"].update(max_steps=4, save_steps=2, logging_steps=1)
    raw["steps"][2]["with"].update(max_new_tokens=6, n_shot=1)
    raw["steps"].append({"id": "serve", "uses": "serve", "needs": ["export"], "with": {"api_port": _free_port()}})
    return raw


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(raw: dict, **forcing):
    return run_pipeline(plan_pipeline(parse_pipeline(raw), **forcing), echo=lambda line: None)


def manifest(step) -> dict:
    return json.loads((Path(step["artifact_dir"]) / "manifest.json").read_text())


def statuses(result) -> dict[str, str]:
    return {step_id: step["status"] for step_id, step in result.record.data["steps"].items()}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    raw = sft_lora(tmp_path_factory.mktemp("store"))
    return raw, run(raw)


def test_a_run_executes_every_step_and_writes_finished_artifacts(first):
    _, result = first
    assert result.ok, result.record.data.get("error")
    steps = result.record.data["steps"]
    assert statuses(result) == dict.fromkeys(("data", "sft", "eval", "export", "serve"), "complete")
    for step_id, step in steps.items():
        written = manifest(step)
        assert written["status"] == "complete" and written["fingerprint"] == step["fingerprint"], step_id
        assert (Path(step["artifact_dir"]) / "step.log").read_text().startswith(f"step {step_id} ")
    assert (Path(steps["sft"]["outputs"]["model"]) / "adapter_model.safetensors").is_file()
    assert (Path(steps["export"]["outputs"]["model"]) / "model.safetensors").is_file()
    predictions = Path(steps["eval"]["outputs"]["predictions"]).read_text().splitlines()
    assert len(predictions) == 10 and "base_predict" in json.loads(predictions[0])
    assert manifest(steps["sft"])["inputs"] == {"data": steps["data"]["fingerprint"]}
    assert steps["eval"]["metrics"]["eval_loss"] > 0 and "choice_accuracy" in steps["eval"]["metrics"]
    assert steps["sft"]["metrics"]["train_loss"] > 0


def test_the_serve_step_deployed_the_export_answered_and_shut_down(first):
    from ray import serve

    _, result = first
    step = result.record.data["steps"]["serve"]
    endpoint = json.loads(Path(step["outputs"]["endpoint"]).read_text())
    assert endpoint["url"] == step["outputs"]["url"] and endpoint["url"].endswith("/v1")
    assert endpoint["models"] and endpoint["keep_alive"] is False
    assert endpoint["smoke_request"]["usage"]["completion_tokens"] == step["metrics"]["smoke_completion_tokens"] > 0
    assert endpoint["app_name"] not in serve.status().applications  # removed after the smoke request


def test_eval_and_export_ran_at_the_same_time(first):
    _, result = first
    steps = result.record.data["steps"]
    window = {
        k: (datetime.fromisoformat(steps[k]["started_at"]), datetime.fromisoformat(steps[k]["finished_at"]))
        for k in ("eval", "export")
    }
    assert window["eval"][0] < window["export"][1] and window["export"][0] < window["eval"][1]
    assert window["eval"][0] >= datetime.fromisoformat(steps["sft"]["finished_at"])


def test_mlflow_has_one_parent_run_and_one_child_per_step(first):
    from mlflow.tracking import MlflowClient

    _, result = first
    mlflow = result.record.data["mlflow"]
    client = MlflowClient(mlflow["tracking_uri"])
    parent = client.get_run(mlflow["run_id"])
    assert parent.data.tags["lf_ray.run_id"] == result.record.run_id and parent.info.status == "FINISHED"
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_step = {child.data.tags["lf_ray.step"]: child for child in children}
    assert set(by_step) == {"data", "sft", "eval", "export", "serve"}
    sft = by_step["sft"]
    assert sft.data.tags["lf_ray.stage"] == "sft" and sft.data.params["learning_rate"] == "0.001"
    assert sft.data.tags["lf_ray.fingerprint"] == result.record.data["steps"]["sft"]["fingerprint"]
    assert [m.step for m in client.get_metric_history(sft.info.run_id, "loss")] == [1, 2, 3, 4]  # from rank 0
    assert "training_loss.png" in {a.path for a in client.list_artifacts(sft.info.run_id)}
    assert by_step["eval"].data.metrics["eval_loss"] == pytest.approx(
        result.record.data["steps"]["eval"]["metrics"]["eval_loss"]
    )
    assert all(child.info.status == "FINISHED" for child in children)


def test_a_second_run_reuses_every_artifact(first):
    raw, result = first
    before = {
        k: Path(s["artifact_dir"], "manifest.json").stat().st_mtime_ns for k, s in result.record.data["steps"].items()
    }
    again = run(raw)
    assert again.ok and statuses(again) == {**dict.fromkeys(before, "cached"), "serve": "complete"}  # redeployed
    del before["serve"]
    after = {
        k: Path(s["artifact_dir"], "manifest.json").stat().st_mtime_ns
        for k, s in again.record.data["steps"].items()
        if k != "serve"
    }
    assert after == before


def test_a_changed_step_reruns_alone_and_only_forces_what_is_asked(first):
    raw, result = first
    changed = copy.deepcopy(raw)
    changed["steps"][2]["with"]["max_new_tokens"] = 4
    rerun = run(changed)
    assert statuses(rerun) == {
        "data": "cached", "sft": "cached", "eval": "complete", "export": "cached", "serve": "complete"
    }  # fmt: skip
    old_eval, new_eval = result.record.data["steps"]["eval"], rerun.record.data["steps"]["eval"]
    assert new_eval["artifact_dir"] != old_eval["artifact_dir"] and manifest(old_eval)["status"] == "complete"

    only = run(raw, only_step="export")
    assert statuses(only) == {
        "data": "cached", "sft": "cached", "eval": "cached", "export": "complete", "serve": "cached"
    }  # fmt: skip
    assert only.record.data["steps"]["export"]["artifact_dir"] == result.record.data["steps"]["export"]["artifact_dir"]


def test_a_failing_step_skips_its_descendants_and_leaves_no_artifact(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dataset_info.json").write_text(json.dumps({"broken": {"file_name": "broken.json"}}))
    (data_dir / "broken.json").write_text('[{"instruction": "hi", "output": "hello"},\n {"instruction": oops}]')
    raw = {
        "name": "broken",
        "storage_path": str(tmp_path / "store"),
        "defaults": {"model_name_or_path": "builtin:tiny-llama", "template": "llama3"},
        "steps": [
            {"id": "data", "uses": "preprocess", "with": {"dataset": "broken", "dataset_dir": str(data_dir)}},
            {"id": "sft", "uses": "train", "needs": ["data"], "with": {"max_steps": 1}},
            {"id": "export", "uses": "export"},  # independent: the base model, copied
        ],
    }
    result = run(raw)
    assert not result.ok and statuses(result) == {"data": "failed", "sft": "skipped", "export": "complete"}
    error = result.record.data["steps"]["data"]["error"]
    assert "broken.json: malformed JSON at line 2" in error
    data_dir_artifact = Path(result.record.data["steps"]["data"]["artifact_dir"])
    assert not (data_dir_artifact / "manifest.json").exists() and not (data_dir_artifact / "train").exists()
    assert result.record.data["error"].startswith("step `data` failed")
