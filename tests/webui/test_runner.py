"""The runner with real `lf-ray` processes: an export that succeeds, one that fails with the log's tail, a
training run aborted midway (its whole process tree stops), and demo mode launching nothing."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from lf_ray.tracking.trainer_log import read_trainer_log
from lf_ray.webui.board_configs import RUN_FORM_NAME
from lf_ray.webui.jobs import RUNNING_LOG, RayJob
from lf_ray.webui.roots import AllowedRoots
from lf_ray.webui.runner import Runner


def board_runner(tmp_path, **kwargs) -> Runner:
    """A runner whose forms may name the test's folder (as the board's start folder)."""
    return Runner(jobs_dir=tmp_path / "jobs", roots=AllowedRoots.of([tmp_path]), **kwargs)


def _last(updates):
    *_, last = updates
    return last


def test_demo_mode_previews_but_launches_nothing(tmp_path, train_state):
    runner = board_runner(tmp_path, demo_mode=True)
    preview = runner.preview("train", train_state)
    assert preview.startswith(f"lf-ray train {train_state['train.output_dir']}/lf_ray_train.yaml")
    (update,) = runner.start("train", train_state)
    assert update.done and update.text.startswith("Demo mode")
    assert runner.job is None and not os.path.exists(train_state["train.output_dir"])


def test_a_refused_form_is_reported_in_the_chosen_language(tmp_path, train_state):
    runner, no_dataset = board_runner(tmp_path), {**train_state, "train.dataset": []}
    (update,) = runner.start("train", {**no_dataset, "top.lang": "zh"})
    assert update.done and update.text == runner.preview("train", {**no_dataset, "top.lang": "zh"})
    assert update.text != runner.preview("train", no_dataset) == "Choose at least one dataset."  # not English


def test_export_runs_as_a_local_process_and_reports_success(tmp_path, train_state, tiny_llama_path):
    state = {**train_state, "export.export_dir": str(tmp_path / "merged"), "export.export_size": 1}
    runner = board_runner(tmp_path)
    job_dir = tmp_path / "jobs" / f"export-{str(tmp_path / 'merged').strip('/').replace('/', '_')}"
    assert runner.preview("export", state).startswith(f"lf-ray export {job_dir}/lf_ray_export.yaml\n")
    updates = list(runner.start("export", state))
    assert updates[0].text.startswith("Started pid ")
    assert updates[-1].done and updates[-1].text.startswith(f"Exported to {tmp_path / 'merged'}.")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    written = yaml.safe_load((job_dir / "lf_ray_export.yaml").read_text())
    assert written["export_dir"] == str(tmp_path / "merged") and written["export_size"] == 1
    assert "export:" in (job_dir / RUNNING_LOG).read_text()


def test_a_failing_job_reports_its_exit_status_and_the_log_tail(tmp_path, train_state):
    not_an_adapter = tmp_path / "not-an-adapter"
    not_an_adapter.mkdir()
    state = {**train_state, "top.adapter_path": [str(not_an_adapter)], "export.export_dir": str(tmp_path / "m")}
    final = _last(board_runner(tmp_path).start("export", state))
    assert final.done and final.text.startswith("Failed (exit status 2). The end of the log:")
    assert "lf-ray export: error:" in final.text and str(not_an_adapter) in final.text
    assert not (tmp_path / "m").exists()


@pytest.mark.usefixtures("tiny_llama_path")
def test_aborting_a_local_training_run_stops_its_process_tree(tmp_path, train_state):
    state = {**train_state, "train.max_steps": 100000, "train.save_steps": 100000}
    runner = board_runner(tmp_path)
    updates, seen_progress = runner.start("train", state), False
    for update in updates:
        if 'data-step="0"' not in update.progress and "data-step" in update.progress:
            seen_progress = True
            runner.abort()
        if update.done:
            break
    assert seen_progress and update.text == "Aborted."
    assert runner.job.session_pids() == []  # the driver and everything it started (its local Ray) are gone
    output_dir = train_state["train.output_dir"]
    logged = len(read_trainer_log(output_dir))
    time.sleep(2)
    assert 0 < logged == len(read_trainer_log(output_dir)) and logged < 100000
    assert (tmp_path / "saves" / "tiny-llama" / "lora" / "train_1" / RUN_FORM_NAME).is_file()


def test_eval_reports_metrics_and_sample_predictions(tmp_path, train_state, tiny_llama_path):
    state = {
        **train_state,
        "eval.dataset_dir": "builtin",
        "eval.dataset": ["identity_eval"],
        "eval.cutoff_len": 128,
        "eval.max_samples": "6",
        "eval.batch_size": 2,
        "eval.predict": True,
        "eval.max_new_tokens": 8,
        "eval.output_dir": str(tmp_path / "eval"),
    }
    final = _last(board_runner(tmp_path).start("eval", state))
    assert final.done and final.text.startswith(f"Finished: {tmp_path / 'eval'}"), final.text
    assert final.metrics["eval_loss"] > 0 and "predict_bleu-4" in final.metrics
    assert len(final.predictions) == 5 and set(final.predictions[0]) >= {"prompt", "predict", "label"}


def test_closing_the_board_leaves_a_ray_job_to_its_cluster_without_asking_it(tmp_path):
    runner = board_runner(tmp_path)
    assert runner.close() is None  # nothing launched
    runner.job = RayJob(name="lf-ray-train-1", client=None)  # its cluster may be gone: nothing may call it
    assert runner.close() == "the last Ray job it submitted, lf-ray-train-1, is its cluster's (`ray job stop` stops it)"
