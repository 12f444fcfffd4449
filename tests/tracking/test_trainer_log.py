"""trainer_log.jsonl: LLaMA-Factory's keys from a real Trainer, resume without double-counted steps."""

from __future__ import annotations

import json

from transformers import TrainerControl, TrainerState, TrainingArguments

from lf_ray.tracking.trainer_log import (
    TRAINER_LOG,
    TrainerLogCallback,
    format_duration,
    format_progress,
    read_trainer_log,
)

LF_KEYS = {"current_steps", "total_steps", "lr", "epoch", "percentage", "elapsed_time", "remaining_time"}


def _args(tmp_path) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")


def _write_log(path, steps) -> None:
    path.write_text("".join(json.dumps({"current_steps": s, "total_steps": 6, "loss": 1.0}) + "\n" for s in steps))


def test_duration_is_llamafactory_format():
    assert format_duration(0) == "0:00:00"
    assert format_duration(3725.9) == "1:02:05"
    assert format_duration(90061) == "1 day, 1:01:01"


def test_real_trainer_writes_one_line_per_log_event(tmp_path, train_tiny):
    train_tiny(tmp_path, [TrainerLogCallback()])
    entries = read_trainer_log(tmp_path / TRAINER_LOG)

    train = [e for e in entries if "loss" in e]
    assert [e["current_steps"] for e in train] == [1, 2, 3, 4, 5, 6]
    assert all(e.keys() >= LF_KEYS and e["total_steps"] == 6 for e in train)
    assert [e["percentage"] for e in train] == [16.67, 33.33, 50.0, 66.67, 83.33, 100.0]
    assert train[0]["lr"] == 1e-3 and train[-1]["epoch"] > 0
    assert all(e["throughput"] > 0 and e["total_tokens"] == 32 * e["current_steps"] for e in train)
    assert all(len(e["elapsed_time"].split(":")) == 3 for e in entries)
    assert [e["current_steps"] for e in entries if "eval_loss" in e] == [3, 6]
    # no process-private keys leak: only LF's names (plus throughput / total_tokens)
    assert set().union(*entries) <= LF_KEYS | {"loss", "eval_loss", "throughput", "total_tokens"}


def test_resume_drops_lines_after_the_checkpoint(tmp_path, train_tiny):
    train_tiny(tmp_path, [TrainerLogCallback()])
    before = read_trainer_log(tmp_path)
    train_tiny(tmp_path, [TrainerLogCallback()], resume_from=str(tmp_path / "checkpoint-3"))
    after = read_trainer_log(tmp_path)

    steps = [e["current_steps"] for e in after if "loss" in e]
    assert steps == [1, 2, 3, 4, 5, 6]  # 4..6 logged again, once
    assert [e["current_steps"] for e in after if "eval_loss" in e] == [3, 6]
    assert after[:4] == before[:4]  # steps 1-3 and the eval at 3 are the first run's lines, kept as they were


def test_fresh_start_replaces_an_old_log(tmp_path):
    _write_log(tmp_path / TRAINER_LOG, [1, 2, 3])
    TrainerLogCallback().on_train_begin(_args(tmp_path), TrainerState(max_steps=6), TrainerControl())
    assert read_trainer_log(tmp_path) == []


def test_truncation_keeps_steps_up_to_global_step_and_drops_torn_lines(tmp_path):
    log = tmp_path / TRAINER_LOG
    _write_log(log, [1, 2, 3, 4])
    log.write_text(log.read_text() + '{"current_steps": 5, "lo')  # a crash mid-write
    TrainerLogCallback().on_train_begin(_args(tmp_path), TrainerState(global_step=2, max_steps=6), TrainerControl())
    assert [e["current_steps"] for e in read_trainer_log(log)] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [TRAINER_LOG]  # no temp file left


def test_only_the_world_main_process_writes(tmp_path):
    state = TrainerState(max_steps=4, global_step=1)
    state.is_world_process_zero = False
    callback = TrainerLogCallback()
    callback.on_train_begin(_args(tmp_path), state, TrainerControl())
    callback.on_log(_args(tmp_path), state, TrainerControl(), logs={"loss": 2.0})
    assert not (tmp_path / TRAINER_LOG).exists()


def test_read_skips_a_partial_last_line_and_missing_file_is_empty(tmp_path):
    assert read_trainer_log(tmp_path) == []
    (tmp_path / TRAINER_LOG).write_text('{"current_steps": 1, "loss": 2.5}\n{"current_st')
    assert read_trainer_log(tmp_path) == [{"current_steps": 1, "loss": 2.5}]


def test_format_progress():
    entry = {
        "current_steps": 12,
        "total_steps": 100,
        "loss": 1.23456,
        "lr": 1e-4,
        "percentage": 12.0,
        "elapsed_time": "0:00:31",
        "remaining_time": "0:03:47",
        "throughput": 1812.4,
    }
    assert format_progress(entry) == ("step 12/100 (12.0%) | loss 1.2346 | 1,812 tok/s | elapsed 0:00:31 | ETA 0:03:47")
    assert format_progress({"current_steps": 3, "total_steps": 6, "percentage": 50.0, "eval_loss": 2.0}) == (
        "step 3/6 (50.0%) | eval_loss 2.0000"
    )


def test_grpos_metrics_are_copied_under_trls_names_and_the_progress_line_shows_the_reward(tmp_path):
    state = TrainerState(max_steps=4, global_step=1)
    callback = TrainerLogCallback()
    callback.on_train_begin(_args(tmp_path), state, TrainerControl())
    rl = {"reward": 0.5, "reward_std": 0.1, "kl": 0.02, "rewards/numeric_match/mean": 0.5, "completions/mean_length": 7}
    logs = {"loss": 0.01, **rl, "eval_reward": 0.4, "clip_ratio/low_min": 0.0, "step_time": 1.2}
    callback.on_log(_args(tmp_path), state, TrainerControl(), logs=logs)
    (entry,) = read_trainer_log(tmp_path)
    assert {key: entry[key] for key in [*rl, "eval_reward"]} == {**rl, "eval_reward": 0.4}
    assert "clip_ratio/low_min" not in entry and "step_time" not in entry
    assert "| reward 0.5000 |" in format_progress(entry)
