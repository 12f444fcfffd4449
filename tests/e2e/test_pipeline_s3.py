"""A whole pipeline with no shared filesystem: the storage path, the datasets and the base model are on a real
S3-compatible server (moto in its own process); preprocess → train (2 Ray Train workers, checkpoints on S3) →
eval → export → serve writes every artifact and manifest into the bucket, and a second run reuses them all."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from lf_ray import storage
from lf_ray.constants import DEMO_DATA_DIR
from lf_ray.pipeline.executor import run_pipeline
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline
from tests.conftest import free_port

pytestmark = pytest.mark.usefixtures("ray_session")


def _keys(bucket: str, prefix: str = "") -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def bucket(s3_server, tiny_llama_path, tmp_path_factory) -> str:
    """A bucket holding the base model and the datasets: `data/` with a dataset_info.json whose entries name a
    file under it and, LLaMA-Factory's way, an object elsewhere (`cloud_file_name`)."""
    import boto3

    name = f"lfr-e2e-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    storage.upload_dir(Path(tiny_llama_path), f"s3://{name}/models/tiny-llama")
    data = tmp_path_factory.mktemp("data")
    for file in ("identity.json", "identity_eval.json"):
        shutil.copy(DEMO_DATA_DIR / file, data / file)
    info = {
        "identity": {"file_name": "identity.json"},
        "identity_eval": {"file_name": "identity_eval.json"},
        "alpaca_en_demo": {"cloud_file_name": f"s3://{name}/shared/alpaca_en_demo.json"},
    }
    (data / "dataset_info.json").write_text(json.dumps(info))
    storage.upload_dir(data, f"s3://{name}/data")
    storage.write_bytes(f"s3://{name}/shared/alpaca_en_demo.json", (DEMO_DATA_DIR / "alpaca_en_demo.json").read_bytes())
    return name


def _pipeline(bucket: str) -> dict:
    return {
        "name": "on_s3",
        "storage_path": f"s3://{bucket}/pipelines",
        "defaults": {
            "model_name_or_path": f"s3://{bucket}/models/tiny-llama",
            "template": "llama3",
            "dataset_dir": f"s3://{bucket}/data",
            "finetuning_type": "lora",
            "cutoff_len": 96,
        },
        "steps": [
            {"id": "data", "uses": "preprocess", "with": {"dataset": "identity,alpaca_en_demo", "val_size": 0.1}},
            {
                "id": "sft",
                "uses": "train",
                "needs": ["data"],
                "with": {
                    "max_steps": 4,
                    "save_steps": 2,
                    "logging_steps": 1,
                    "per_device_train_batch_size": 2,
                    "ray_num_workers": 2,
                    "resources_per_worker": {"CPU": 1},
                },
            },
            {"id": "eval", "uses": "eval", "needs": ["data", "sft"], "with": {}},
            {"id": "export", "uses": "export", "needs": ["sft"]},
            {"id": "serve", "uses": "serve", "needs": ["export"], "with": {"api_port": free_port()}},
        ],
    }


@pytest.fixture(scope="module")
def first(bucket, tmp_path_factory, monkeypatch_module):
    workdir = tmp_path_factory.mktemp("workdir")
    monkeypatch_module.chdir(workdir)  # nothing of the run may land here: it has no local storage path
    result = run_pipeline(plan_pipeline(parse_pipeline(_pipeline(bucket))), echo=lambda line: None)
    return result, workdir


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_every_artifact_and_manifest_lands_in_the_bucket(bucket, first):
    result, workdir = first
    assert result.ok, result.record.data.get("error")
    steps = result.record.data["steps"]
    assert {k: s["status"] for k, s in steps.items()} == dict.fromkeys(steps, "complete")
    keys = _keys(bucket, "pipelines/on_s3/")
    for step_id, step in steps.items():
        assert step["artifact_dir"].startswith(f"s3://{bucket}/pipelines/on_s3/steps/{step_id}/")
        manifest = json.loads(storage.read_text(storage.join(step["artifact_dir"], "manifest.json")))
        assert manifest["status"] == "complete" and manifest["fingerprint"] == step["fingerprint"]
        assert storage.read_text(storage.join(step["artifact_dir"], "step.log")).startswith(f"step {step_id} ")
    sft, export = steps["sft"]["outputs"]["model"], steps["export"]["outputs"]["model"]
    assert storage.is_file(storage.join(sft, "adapter_model.safetensors"))
    assert not [key for key in keys if "/model/checkpoint-" in key]  # checkpoints live in Ray Train's storage
    assert any(key.startswith("pipelines/on_s3/ray_train/") and "checkpoint" in key for key in keys)
    assert storage.is_file(storage.join(export, "model.safetensors"))
    assert storage.is_file(storage.join(steps["data"]["outputs"]["dataset"], "eval", "part-00000-of-00001.parquet"))
    assert steps["eval"]["metrics"]["eval_loss"] > 0  # on the eval split preprocess set aside in the bucket
    assert json.loads(storage.read_text(steps["serve"]["outputs"]["endpoint"]))["smoke_request"]["answer"] is not None
    assert any(key.startswith("pipelines/on_s3/runs/") and key.endswith("run.json") for key in keys)
    assert not list(workdir.iterdir())  # nothing but lf-ray's caches (under LF_RAY_HOME) touched a local disk


def test_a_second_run_reuses_every_step_from_the_bucket(bucket, first):
    result, _ = first
    before = {step_id: step["fingerprint"] for step_id, step in result.record.data["steps"].items()}
    again = plan_pipeline(parse_pipeline(_pipeline(bucket)))
    assert {step.id for step in again.to_run} == {"serve"}  # an endpoint is deployed every run
    assert {step_id: step.fingerprint for step_id, step in again.steps.items() if step_id != "serve"} == {
        k: v for k, v in before.items() if k != "serve"
    }


def test_runs_are_listed_from_the_bucket(bucket, first, capsys):
    from lf_ray.cli import main

    result, _ = first
    assert main(["runs", "list", f"s3://{bucket}/pipelines"]) == 0
    assert result.record.run_id in capsys.readouterr().out
