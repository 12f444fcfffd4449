"""`report_to: tensorboard | wandb` through transformers' own integrations, trained as the Ray worker sets them up.

CPU, no Ray, no network: the training environment and `report_to` come from the worker's functions
(`training_environment`, `trainer_report_to`), TensorBoard's event files are read back with its EventAccumulator and
the W&B offline run's `.wandb` file with W&B's protobuf records.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import datasets
import pytest

from lf_ray.model.loader import load_causal_lm
from lf_ray.tracking.trackers import finish_tracker_runs, trainer_report_to
from lf_ray.train.arguments import build_training_arguments, training_environment
from lf_ray.train.stages import StageContext, build_trainer
from tests.train.stage_runs import ROWS, lora, stage_config


def train_as_the_worker(cfg, encoded, tiny_llama_path, output_dir: Path, monkeypatch):
    """What `train.worker` does around the trainer: its environment, its `report_to`, and the runs closed at the end."""
    for name, value in training_environment(cfg).items():
        monkeypatch.setenv(name, value)
    args = build_training_arguments(cfg, output_dir=str(output_dir), overrides={"report_to": trainer_report_to(cfg)})
    tokenizer, rows = encoded("sft")
    context = StageContext(
        cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, args, datasets.Dataset.from_list(rows[:ROWS])
    )
    trainer = build_trainer(context)
    trainer.train()
    finish_tracker_runs()
    return trainer


def losses(trainer) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}


def test_report_to_leaves_mlflow_and_the_swanlab_callback_to_lf_ray():
    def report_to(*keys: str) -> list[str]:
        return trainer_report_to(stage_config("sft", *keys))

    assert report_to() == ["none"]
    assert report_to("report_to=[tensorboard,mlflow,wandb]") == ["tensorboard", "wandb"]
    assert report_to("report_to=swanlab") == ["swanlab"]  # transformers' SwanLab integration
    assert report_to("report_to=[swanlab,mlflow]", "use_swanlab=true") == ["none"]  # lf-ray's callbacks, both


def test_a_tracker_whose_package_is_missing_stops_the_run_before_training(monkeypatch):
    from lf_ray.tracking import trackers
    from lf_ray.train.launcher import training_problems

    cfg = stage_config("sft", "report_to=[tensorboard,wandb,mlflow]", "use_swanlab=true")
    assert trackers.tracker_packages_missing(cfg) == []
    monkeypatch.setattr(trackers, "_installed", lambda package: package == "tensorboardX")  # TensorBoard's fallback
    assert trackers.tracker_packages_missing(cfg) == [
        "`report_to: wandb` needs wandb, which is not installed: pip install 'lf-ray[tracking]'",
        "`use_swanlab: true` needs swanlab, which is not installed: pip install 'lf-ray[tracking]'",
    ]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # no cluster to ask for its GPUs
    assert "`use_swanlab: true` needs swanlab" in "\n".join(training_problems(cfg))


def test_tensorboard_writes_the_losses_under_logging_dir(encoded, tiny_llama_path, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)  # restored after the test
    logging_dir = tmp_path / "tb"
    cfg = stage_config("sft", "max_steps=4", "report_to=tensorboard", f"logging_dir={logging_dir}")
    trainer = train_as_the_worker(cfg, encoded, tiny_llama_path, tmp_path / "output", monkeypatch)

    assert list(logging_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(logging_dir))
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("train/loss")}
    assert sorted(logged) == [1, 2, 3, 4] and logged == pytest.approx(losses(trainer), rel=1e-6)  # float32


def wandb_records(run_file: Path):
    """The protobuf records of a `.wandb` file: a 7-byte header, then LevelDB-log blocks of 32 KiB, whose chunks
    (FULL, or FIRST / MIDDLE / LAST) carry one serialized `Record` each."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = run_file.read_bytes()
    assert data[:4] == b":W&B"
    block, header, position, chunks = 32768, 7, 7, []
    while position + header <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + header])
        if left < header or (kind == 0 and length == 0):  # the zero padding at the end of a block
            position += left
            continue
        chunks.append(data[position + header : position + header + length])
        position += header + length
        if kind in (1, 4):  # FULL, LAST
            record = Record()
            record.ParseFromString(b"".join(chunks))
            chunks = []
            yield record


def test_wandb_offline_run_holds_the_losses(encoded, tiny_llama_path, tmp_path, monkeypatch):
    wandb_dir = tmp_path / "wandb_home"
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(wandb_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "lf-ray-tests")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = stage_config("sft", "max_steps=4", "report_to=[wandb,mlflow]", "run_name=tiny-sft")
    assert trainer_report_to(cfg) == ["wandb"]
    trainer = train_as_the_worker(cfg, encoded, tiny_llama_path, tmp_path / "output", monkeypatch)

    (run_file,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = list(wandb_records(run_file))
    (run,) = [record.run for record in records if record.HasField("run")]
    assert (run.project, run.display_name) == ("lf-ray-tests", "tiny-sft")
    history = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        for record in records
        if record.HasField("history")
    ]
    logged = {row["train/global_step"]: row["train/loss"] for row in history if "train/loss" in row}
    assert sorted(logged) == [1, 2, 3, 4] and logged == pytest.approx(losses(trainer))
    assert records[-1].HasField("exit") and records[-1].exit.exit_code == 0  # finish_tracker_runs closed it
