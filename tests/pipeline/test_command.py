"""The single commands as small plans: the pipeline's fingerprints, cache, printer and run record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from lf_ray import storage
from lf_ray.cli import main
from lf_ray.config import prepare_config
from lf_ray.constants import MANIFEST_NAME
from lf_ray.pipeline import executor
from lf_ray.pipeline.command import command_plan
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline
from lf_ray.pipeline.store import find_runs

MODEL = {"model_name_or_path": "builtin:tiny-llama", "template": "llama3"}
DATA = {"dataset_dir": "builtin", "dataset": "identity", "cutoff_len": 64, "val_size": 0.1}
TRAIN = {"stage": "sft", "finetuning_type": "lora", "max_steps": 2, "learning_rate": 0.01}


def _overrides(keys: dict) -> list[str]:
    return [f"{key}={value}" for key, value in keys.items()]


def test_a_command_plans_the_fingerprints_a_pipeline_of_the_same_config_plans(tmp_path):
    out = tmp_path / "out"
    cfg = prepare_config(None, _overrides({**MODEL, **DATA, **TRAIN, "output_dir": out}))
    command = command_plan("train", cfg)
    pipeline = plan_pipeline(
        parse_pipeline(
            {
                "name": "same",
                "storage_path": str(tmp_path / "store"),
                "defaults": MODEL,
                "steps": [
                    {"id": "data", "uses": "preprocess", "with": DATA},
                    {"id": "sft", "uses": "train", "needs": ["data"], "with": TRAIN},
                ],
            }
        )
    )
    assert list(command.steps) == ["preprocess", "train"] and command.steps["train"].needs == ("preprocess",)
    assert command.steps["preprocess"].fingerprint == pipeline.steps["data"].fingerprint
    assert command.steps["train"].fingerprint == pipeline.steps["sft"].fingerprint
    # LLaMA-Factory's folders, not the pipeline's: the model in output_dir, the tokenized rows beside it
    assert command.steps["train"].artifact == str(out)
    assert (
        command.steps["preprocess"].artifact == str(out / "tokenized") == command.steps["preprocess"].outputs["dataset"]
    )
    assert command.root == str(Path.cwd() / "saves" / "pipelines" / "train")  # ray_storage_path's default: ./saves

    changed = prepare_config(None, _overrides({**MODEL, **DATA, **TRAIN, "output_dir": out, "learning_rate": 0.02}))
    again = command_plan("train", changed)
    assert again.steps["preprocess"].fingerprint == command.steps["preprocess"].fingerprint  # data keys unchanged
    assert again.steps["train"].fingerprint != command.steps["train"].fingerprint


def _config_file(tmp_path, keys: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump({key: str(value) if isinstance(value, Path) else value for key, value in keys.items()})
    )
    return str(path)


def test_preprocess_twice_reuses_the_artifact_and_records_both_runs(tmp_path, capsys):
    keys = {**MODEL, **DATA, "stage": "sft", "output_dir": tmp_path / "out", "ray_storage_path": tmp_path / "runs"}
    config = _config_file(tmp_path, keys)
    assert main(["preprocess", config]) == 0
    first = capsys.readouterr().out
    assert "preprocess     preprocess -                    run " in first and "rows in ->" in first

    artifact = tmp_path / "out" / "tokenized"
    manifest = json.loads((artifact / MANIFEST_NAME).read_text())
    # one manifest: the dataset's facts (its splits) and the step's (kind, run, timings) together
    assert manifest["kind"] == "preprocess" and manifest["status"] == "complete"
    assert set(manifest["splits"]) == {"train", "eval"} and manifest["splits"]["eval"]["rows_out"] > 0
    assert manifest["step"] == "preprocess" and manifest["timings"]["duration_s"] > 0
    assert (artifact / "step.log").read_text().startswith("step preprocess (preprocess) started")
    written = (artifact / "train").stat().st_mtime_ns

    assert main(["preprocess", config]) == 0
    second = capsys.readouterr().out
    assert "preprocess     preprocess -                    reuse" in second and "rows in ->" not in second
    assert (artifact / "train").stat().st_mtime_ns == written

    runs = find_runs(str(tmp_path / "runs" / "pipelines"))
    assert [run.data["pipeline"] for run in runs] == ["preprocess", "preprocess"]
    assert [run.data["steps"]["preprocess"]["status"] for run in runs] == ["cached", "complete"]
    assert all(run.data["status"] == "complete" for run in runs)


def test_a_failed_command_step_is_recorded_and_commits_nothing(tmp_path, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dataset_info.json").write_text(json.dumps({"broken": {"file_name": "broken.json"}}))
    (data_dir / "broken.json").write_text('[{"instruction": "hi", "output": "hello"},\n {"instruction": oops}]')
    keys = {**MODEL, "dataset_dir": data_dir, "dataset": "broken", "tokenized_path": tmp_path / "tok"}
    assert main(["preprocess", _config_file(tmp_path, {**keys, "ray_storage_path": tmp_path / "runs"})]) == 2
    assert "broken.json: malformed JSON at line 2" in capsys.readouterr().err
    assert not (tmp_path / "tok").exists()  # nothing half-written, not even a log
    (run,) = find_runs(str(tmp_path / "runs" / "pipelines"))
    step = run.data["steps"]["preprocess"]
    assert run.data["status"] == "failed" and "malformed JSON" in step["error"]
    assert step["log"] == storage.join(run.folder, "preprocess.log")
    assert "malformed JSON" in storage.read_text(step["log"])


def test_sigterm_during_a_command_step_records_it_interrupted_and_exits_143(tmp_path, capsys, monkeypatch):
    """A real SIGTERM to this process while the step runs: the CLI's handler interrupts the step, the run record says
    interrupted, the command exits 128 + 15 without a traceback, and the handler before it is back."""

    def step_stopped_by_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises here
        raise AssertionError("SIGTERM did not interrupt the step")

    monkeypatch.setattr(executor, "run_step", step_stopped_by_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    config = _config_file(tmp_path, {**MODEL, **DATA, "ray_storage_path": tmp_path / "runs"})
    started = time.monotonic()
    assert main(["preprocess", config]) == 143 and time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "lf-ray preprocess: stopped by SIGTERM" in err and "Traceback" not in err
    (run,) = find_runs(str(tmp_path / "runs" / "pipelines"))
    assert run.data["status"] == "interrupted" and run.data["steps"]["preprocess"]["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture
def small_disk(tmp_path):
    """A 4 KiB tmpfs: a real disk that fills up (mounting needs root, as CI has)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_during_an_artifact_write_is_a_clear_error_and_poisons_nothing(tmp_path, small_disk, capsys):
    keys = {**MODEL, **DATA, "dataset": "alpaca_en_demo", "cutoff_len": 256, "val_size": 0}
    config = _config_file(tmp_path, {**keys, "tokenized_path": small_disk / "tok", "ray_storage_path": tmp_path})
    assert main(["preprocess", config]) == 2
    err = capsys.readouterr().err
    assert f"cannot write `{small_disk}/." in err, err
    assert "No space left on device" in err and "Traceback" not in err
    assert "free space on that disk, or write to another folder" in err
    assert list(small_disk.iterdir()) == []  # no artifact, no staging folder left behind
    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)  # space is freed
    assert main(["preprocess", config]) == 0
    out = capsys.readouterr().out
    assert "preprocess     preprocess -                    run " in out  # not taken for cached
    assert json.loads((small_disk / "tok" / MANIFEST_NAME).read_text())["status"] == "complete"
