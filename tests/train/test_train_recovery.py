"""Checkpoints, resume, worker failure and DeepSpeed on a real Ray Train worker group (CPU, tiny model)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lf_ray.config import prepare_config
from lf_ray.pipeline.command import command_plan
from lf_ray.pipeline.executor import run_here
from lf_ray.tracking.trainer_log import read_trainer_log
from lf_ray.train.launcher import run_training

pytestmark = pytest.mark.usefixtures("ray_session")


def _cfg(tmp_path, *overrides: str):
    base = [
        "model_name_or_path=builtin:tiny-llama",
        "stage=sft",
        "do_train=true",
        "finetuning_type=lora",
        "dataset_dir=builtin",
        "dataset=identity",
        "cutoff_len=96",
        "per_device_train_batch_size=2",
        "learning_rate=0.005",
        "logging_steps=1",
        "report_to=none",
        f"output_dir={tmp_path / 'out'}",
        f"ray_storage_path={tmp_path / 'ray'}",
        "ray_num_workers=2",
        'resources_per_worker={"CPU": 1}',
    ]
    return prepare_config(None, [*base, *overrides])


def _logged_steps(output_dir):
    log = read_trainer_log(Path(output_dir) / "trainer_log.jsonl")
    return [entry["current_steps"] for entry in log if "loss" in entry]


def _train_command(cfg) -> dict[str, dict]:
    """`lf-ray train`: its plan (preprocess -> train) run here; the run record's steps."""
    return run_here(command_plan("train", cfg), echo=lambda _: None).record.data["steps"]


def _statuses(steps: dict[str, dict]) -> dict[str, str]:
    return {step_id: step["status"] for step_id, step in steps.items()}


def test_a_second_run_reuses_both_steps_and_a_longer_one_resumes_at_the_next_step(tmp_path):
    out = tmp_path / "out"
    first = _train_command(_cfg(tmp_path, "max_steps=4", "save_steps=2"))
    assert _statuses(first) == {"preprocess": "complete", "train": "complete"}
    assert _logged_steps(out) == [1, 2, 3, 4] and first["train"]["outputs"]["checkpoint"] is not None

    again = _train_command(_cfg(tmp_path, "max_steps=4", "save_steps=2"))
    assert _statuses(again) == {"preprocess": "cached", "train": "cached"}  # the same config: nothing re-done
    assert again["train"]["metrics"] == first["train"]["metrics"] and _logged_steps(out) == [1, 2, 3, 4]

    second = _train_command(_cfg(tmp_path, "max_steps=8", "save_steps=2"))
    assert _statuses(second) == {"preprocess": "cached", "train": "complete"}
    assert _logged_steps(out) == [1, 2, 3, 4, 5, 6, 7, 8]  # continued at 5, nothing twice
    assert second["train"]["metrics"]["train_runtime"] > 0

    run_training(_cfg(tmp_path, "max_steps=3", "save_steps=2", "overwrite_output_dir=true"), show_progress=False)
    assert _logged_steps(out) == [1, 2, 3]  # overwrite_output_dir starts over


def _ray_train_worker_pids() -> list[int]:
    """Ray titles actor processes `ray::<Class>...`; Train's workers are RayTrainWorker actors."""
    import psutil

    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any("ray::RayTrainWorker" in part for part in process.info["cmdline"] or []):
            pids.append(process.info["pid"])
    return sorted(pids)


def test_a_killed_worker_restores_from_the_last_checkpoint_and_finishes(tmp_path):
    cfg = _cfg(tmp_path, "max_steps=14", "save_steps=4", "max_failures=2")
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(done=run_training(cfg, show_progress=False)))
    runner.start()
    killed = None
    deadline = time.time() + 300
    while runner.is_alive() and time.time() < deadline and killed is None:
        if max(_logged_steps(tmp_path / "out") or [0]) >= 6:  # past the checkpoint of step 4
            pids = _ray_train_worker_pids()
            assert len(pids) == 2, pids
            killed = pids[-1]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    runner.join(timeout=600)
    assert killed is not None, "training finished before a worker could be killed"
    assert killed not in _ray_train_worker_pids()
    steps = _logged_steps(result["done"].output_dir)
    assert steps == list(range(1, 15))  # restored at the checkpoint; no step lost or counted twice


def test_losing_the_object_store_mid_run_stops_cleanly_and_a_rerun_resumes_at_its_checkpoint(
    tmp_path, s3_bucket, monkeypatch
):
    """The S3 endpoint drops off the network once a checkpoint is committed, while the next ones upload: the run stops
    with a StorageError that says what to do; once the endpoint is back, the same command resumes from the committed
    checkpoint, which loads, and finishes with every step logged once."""
    from lf_ray import storage
    from lf_ray.errors import StorageError
    from tests.checkpoints import checkpoint_registered
    from tests.conftest import S3_PORT
    from tests.tcp_relay import TcpRelay

    relay = TcpRelay(target=S3_PORT)  # in front of the session's S3 server
    monkeypatch.setenv("AWS_ENDPOINT_URL", relay.url)
    runs = f"{s3_bucket}/ray"
    cfg = _cfg(tmp_path, "max_steps=12", "save_steps=2", f"ray_storage_path={runs}")
    errors: list[Exception] = []

    def train() -> None:
        try:
            run_training(cfg, show_progress=False)
        except StorageError as err:
            errors.append(err)

    runner = threading.Thread(target=train)
    runner.start()
    deadline = time.time() + 300
    while runner.is_alive() and time.time() < deadline:
        if checkpoint_registered(runs):
            break
        time.sleep(0.2)
    relay.down()
    runner.join(timeout=300)
    assert len(errors) == 1, "the run did not stop on the lost storage"
    message = str(errors[0])
    assert f"the run's storage became unreachable while Ray Train used it: {relay.url}" in message, message
    assert "run the same command again: it resumes from the latest committed checkpoint" in message
    log = tmp_path / "out" / "trainer_log.jsonl"
    first_run = log.read_text().splitlines()
    assert len(first_run) < 12, first_run

    relay.up()
    # mark the first run's line of step 1: a resumed run keeps the lines up to its checkpoint, a fresh one rewrites all
    log.write_text("\n".join([first_run[0].replace("{", '{"first_run": true, ', 1), *first_run[1:]]) + "\n")
    result = run_training(cfg, show_progress=False)
    assert _logged_steps(tmp_path / "out") == list(range(1, 13))
    assert read_trainer_log(log)[0].get("first_run") is True  # resumed from the committed checkpoint
    last = f"s3://{result.checkpoint_path}/checkpoint"  # the path within the S3 filesystem
    assert json.loads(storage.read_text(f"{last}/trainer_state.json"))["global_step"] == 12
    relay.down()


@pytest.mark.parametrize("zero", ["ds_z2_config.json", "ds_z3_config.json"])
def test_deepspeed_zero_trains_with_two_cpu_workers_and_saves_a_loadable_model(tmp_path, zero):
    from transformers import AutoModelForCausalLM

    cfg = _cfg(tmp_path, "finetuning_type=full", f"deepspeed=examples/deepspeed/{zero}", "max_steps=3")
    result = run_training(cfg, show_progress=False)
    assert _logged_steps(result.output_dir) == [1, 2, 3]
    model = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert sum(p.numel() for p in model.parameters()) > 500_000
