"""The monitor reads a real `trainer_log.jsonl` (written by lf-ray's callback during a real Trainer run)."""

from __future__ import annotations

from lf_ray.tracking.trainer_log import TrainerLogCallback
from lf_ray.webui.monitor import Progress, log_tail, loss_figure, progress_html, read_progress


def test_progress_and_loss_curve_from_a_real_trainer_log(tmp_path, train_tiny):
    train_tiny(tmp_path, [TrainerLogCallback()], max_steps=4)
    progress, entries = read_progress(tmp_path)
    assert (progress.step, progress.total, progress.percent) == (4, 4, 100.0)
    assert progress.elapsed.count(":") == 2 and progress.remaining == "0:00:00"
    html = progress_html(progress, "Running")
    assert 'data-percent="100"' in html and 'data-step="4"' in html and "Running 4/4 (100%)" in html
    figure = loss_figure(entries)
    (axes,) = figure.axes
    raw, smoothed = axes.lines
    assert list(raw.get_xdata()) == [1, 2, 3, 4]
    assert list(raw.get_ydata()) == [e["loss"] for e in entries if "loss" in e]
    assert len(smoothed.get_ydata()) == 4


def test_before_the_first_log_line_there_is_no_progress(tmp_path):
    assert read_progress(tmp_path / "missing") == (None, [])
    assert read_progress(tmp_path) == (None, [])
    assert 'data-percent="0"' in progress_html(None, "Running <1>")
    assert "&lt;1&gt;" in progress_html(None, "Running <1>")  # labels are escaped
    assert loss_figure([{"current_steps": 1, "total_steps": 9, "loss": 2.0}]) is None  # one point draws nothing


def test_mid_run_progress_and_log_tail():
    entries = [{"current_steps": 3, "total_steps": 12, "percentage": 25.0, "elapsed_time": "0:00:03"}]
    progress = Progress.from_entries(entries)
    assert (progress.step, progress.percent, progress.remaining) == (3, 25.0, "")
    text = "one\n\x1b[36m(RayTrainWorker pid=1)\x1b[0m two\nthree"
    assert log_tail(text, 2) == "(RayTrainWorker pid=1) two\nthree"  # terminal colours dropped
