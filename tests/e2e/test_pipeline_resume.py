"""Crash safety with real processes: kill the driver of `lf-ray run` during training and run it again; and the
same pipeline submitted with `ray job submit` to a `ray start --head` cluster."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from lf_ray.tracking.trainer_log import read_trainer_log
from tests.e2e.conftest import BIN, job_env

ROOT = Path(__file__).resolve().parents[2]


def _pipeline(tmp_path: Path, max_steps: int) -> Path:
    raw = {
        "name": "resumable",
        "storage_path": str(tmp_path / "store"),
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
                    "save_steps": 2,
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


def _step_dirs(tmp_path: Path, step: str) -> list[Path]:
    return sorted((tmp_path / "store" / "resumable" / "steps" / step).glob("*"))


def _logged_steps(output_dir: Path) -> list[int]:
    return [entry["current_steps"] for entry in read_trainer_log(output_dir / "trainer_log.jsonl") if "loss" in entry]


def test_killing_the_driver_during_train_resumes_at_the_train_step(tmp_path):
    pipeline = _pipeline(tmp_path, max_steps=24)
    driver = subprocess.Popen(
        [str(BIN / "lf-ray"), "run", str(pipeline)],
        cwd=tmp_path,
        env=job_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its Ray processes share its process group, so they can all be stopped
    )
    try:
        deadline = time.time() + 420
        while time.time() < deadline and driver.poll() is None:
            sft = _step_dirs(tmp_path, "sft")
            if sft and max(_logged_steps(sft[0] / "model") or [0]) >= 5:  # past the checkpoint at step 4
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the pipeline finished or died before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        time.sleep(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # Ray's processes of that driver, if any outlived it
    (data_dir,) = _step_dirs(tmp_path, "data")
    (sft_dir,) = _step_dirs(tmp_path, "sft")
    assert (data_dir / "manifest.json").exists() and not (sft_dir / "manifest.json").exists()
    data_written = (data_dir / "manifest.json").stat().st_mtime_ns
    log = sft_dir / "model" / "trainer_log.jsonl"
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
    assert (data_dir / "manifest.json").stat().st_mtime_ns == data_written  # preprocess did not run again
    assert json.loads((sft_dir / "manifest.json").read_text())["status"] == "complete"
    entries = read_trainer_log(log)
    assert entries[0].get("written_before_the_kill")  # kept: training resumed from the checkpoint, not step 0
    assert _logged_steps(sft_dir / "model") == list(range(1, 25))  # no step lost or counted twice
    assert (_step_dirs(tmp_path, "export")[0] / "manifest.json").exists()


def test_ray_job_submit_runs_the_sweep_pipeline_on_a_ray_cluster(tmp_path, ray_head_cluster):
    """pipelines/sweep.yaml (tokenize, an ASHA sweep, eval and export of the best trial) as a Ray job."""
    sweep = yaml.safe_load((ROOT / "pipelines" / "sweep.yaml").read_text())
    sweep["storage_path"] = str(tmp_path / "store")
    sweep["steps"][1]["with"]["tune"]["num_samples"] = 2  # smaller still: tests/tune runs the 4-trial sweep
    (tmp_path / "sweep.yaml").write_text("# lf-ray run sweep.yaml\n" + yaml.safe_dump(sweep, sort_keys=False))
    env = ray_head_cluster.env
    submit = [
        str(BIN / "ray"), "job", "submit", "--address", ray_head_cluster.dashboard,
        "--working-dir", str(tmp_path), "--", "lf-ray", "run", "sweep.yaml",
    ]  # fmt: skip
    job = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout and "[pipeline] export: complete" in job.stdout
    steps = tmp_path / "store" / "sweep" / "steps"
    (export_dir,) = (steps / "export").glob("*")
    assert (export_dir / "model" / "model.safetensors").is_file()
    (sweep_dir,) = (steps / "sweep").glob("*")
    assert json.loads((sweep_dir / "manifest.json").read_text())["metrics"]["trials"] == 2
    assert (sweep_dir / "model" / "best" / "adapter_model.safetensors").is_file()
