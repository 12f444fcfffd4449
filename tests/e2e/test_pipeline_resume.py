"""Crash safety with real processes: stop the driver of `lf-ray run` with SIGTERM during training and run it again;
and a pipeline submitted with `ray job submit` to a `ray start --head` cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from lf_ray import storage
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import load_pipeline
from lf_ray.pipeline.store import find_runs
from lf_ray.tracking.trainer_log import read_trainer_log
from lf_ray.train.launcher import written_locally
from lf_ray.webui.jobs import session_pids
from tests.checkpoints import checkpoint_registered
from tests.e2e.conftest import BIN, job_env


def _pipeline(tmp_path: Path, storage_path: str, max_steps: int, save_steps: int) -> Path:
    raw = {
        "name": "resumable",
        "storage_path": storage_path,
        "defaults": {"model_name_or_path": "builtin:tiny-llama", "template": "llama3", "dataset_dir": "builtin"},
        "steps": [
            {"id": "data", "uses": "preprocess", "with": {"dataset": "identity", "cutoff_len": 96}},
            {
                "id": "sft",
                "uses": "train",
                "needs": ["data"],
                "with": {
                    "finetuning_type": "lora",
                    "max_steps": max_steps,
                    "save_steps": save_steps,
                    "logging_steps": 1,
                    "per_device_train_batch_size": 2,
                    "ray_num_workers": 1,
                },
            },
            {"id": "export", "uses": "export", "needs": ["sft"]},
        ],
    }
    path = tmp_path / "resumable.yaml"
    path.write_text("# lf-ray run resumable.yaml\n" + yaml.safe_dump(raw, sort_keys=False))
    return path


def _manifest(artifact: str) -> dict | None:
    path = storage.join(artifact, "manifest.json")
    return json.loads(storage.read_text(path)) if storage.is_file(path) else None


def _wait_for_no_processes(session: int, timeout_s: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := session_pids(session)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _logged_steps(log: Path) -> list[int]:
    return [entry["current_steps"] for entry in read_trainer_log(log) if "loss" in entry]


def test_sigterm_to_the_driver_during_train_stops_everything_and_a_rerun_resumes_at_the_train_step(tmp_path, s3_bucket):
    """On the S3 server, where the driver's node keeps only caches (local stores resume through the same code:
    tests/train/test_train_recovery.py resumes runs on local disk). SIGTERM goes to the driver alone, as `kill PID`
    or a container's stop sends it: it stops its steps and its local Ray, records the run as interrupted and exits
    143, leaving no process of its session behind."""
    storage_path = storage.join(s3_bucket, "store")
    pipeline = _pipeline(tmp_path, storage_path, max_steps=14, save_steps=4)
    driver = subprocess.Popen(
        [str(BIN / "lf-ray"), "run", str(pipeline)],
        cwd=tmp_path,
        env=job_env(),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "driver.err", "w"),  # noqa: SIM115 (the child holds it)
        start_new_session=True,  # its Ray processes stay in its session: counted after it exits
    )
    planned = plan_pipeline(load_pipeline(pipeline)).steps
    data_dir, sft_dir, export_dir = (planned[step].artifact for step in ("data", "sft", "export"))
    # rank 0 writes the trainer log here while it trains, and for a URI uploads the folder when training ends
    log = written_locally(planned["sft"].outputs["model"]) / "trainer_log.jsonl"
    try:
        deadline = time.time() + 420
        while time.time() < deadline and driver.poll() is None:
            # past the checkpoint of step 4, and Ray Train has registered it (its controller writes the snapshot of
            # its checkpoints once it has collected a worker's report; a re-run resumes from what that lists)
            if log.exists() and max(_logged_steps(log) or [0]) >= 5 and checkpoint_registered(storage_path):
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the pipeline finished or died before it could be killed"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(driver.pid, signal.SIGTERM)
        try:
            driver.wait(timeout=60)
        finally:
            left = _wait_for_no_processes(driver.pid)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert driver.returncode == 143 and "lf-ray run: stopped by SIGTERM" in (tmp_path / "driver.err").read_text()
    assert left == []  # its Ray (GCS, raylet, the Train workers) stopped with it
    (record,) = find_runs(storage.join(storage_path, "resumable"))
    assert record.data["status"] == "interrupted" and record.data["steps"]["sft"]["status"] == "interrupted"
    assert record.data["steps"]["data"]["status"] == "complete"
    assert _manifest(data_dir) and not _manifest(sft_dir)
    data_written = _manifest(data_dir)["created_at"]
    lines = log.read_text().splitlines()
    marked = json.loads(lines[0]) | {"written_before_the_kill": True}
    log.write_text("\n".join([json.dumps(marked), *lines[1:]]) + "\n")

    rerun = subprocess.run(
        [str(BIN / "lf-ray"), "run", str(pipeline)],
        cwd=tmp_path,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "data: cached" in rerun.stdout
    # a quiet console: the train step's progress lines, none of what Ray's workers print (that goes to a log file)
    assert "[sft] [train] step 14/14" in rerun.stdout and "Ray's worker output: " in rerun.stderr
    assert "RayTrainWorker" not in rerun.stdout + rerun.stderr and "TrainController" not in rerun.stdout + rerun.stderr
    assert _manifest(data_dir)["created_at"] == data_written  # preprocess did not run again
    assert _manifest(sft_dir)["status"] == "complete"
    final_log = tmp_path / "trainer_log.jsonl"  # as committed in the artifact (uploaded, for a URI)
    final_log.write_bytes(storage.read_bytes(storage.join(sft_dir, "model", "trainer_log.jsonl")))
    assert read_trainer_log(final_log)[0].get("written_before_the_kill")  # resumed from the checkpoint, not step 0
    assert _logged_steps(final_log) == list(range(1, 15)), final_log.read_text()  # no step lost or counted twice
    assert _manifest(export_dir)["status"] == "complete"
    assert [storage.list_dirs(storage.join(storage_path, "resumable", "steps", step)) for step in planned] == [
        [data_dir],
        [sft_dir],
        [export_dir],
    ]  # one artifact a step: the re-run wrote into the same ones


def test_ray_job_submit_runs_a_pipeline_on_a_ray_cluster(tmp_path, ray_head_cluster):
    """tokenize, train and export as a Ray job (tests/tune runs sweeps; this is about the job path)."""
    _pipeline(tmp_path, str(tmp_path / "store"), max_steps=4, save_steps=2)
    env = ray_head_cluster.env
    submit = [
        str(BIN / "ray"), "job", "submit", "--address", ray_head_cluster.dashboard,
        "--working-dir", str(tmp_path), "--", "lf-ray", "run", "resumable.yaml",
    ]  # fmt: skip
    job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout and "[pipeline] export: complete" in job.stdout
    steps = tmp_path / "store" / "resumable" / "steps"
    (export_dir,) = (steps / "export").glob("*")
    assert (export_dir / "model" / "model.safetensors").is_file()
    (sft_dir,) = (steps / "sft").glob("*")
    assert _logged_steps(sft_dir / "model" / "trainer_log.jsonl") == [1, 2, 3, 4]
