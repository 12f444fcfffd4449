"""Loss plots from trainer_log.jsonl: LLaMA-Factory's file names, raw + EMA curves, atomic writes."""

from __future__ import annotations

import json

import pytest

from lf_ray.tracking.plot import plot_loss, smooth
from lf_ray.tracking.trainer_log import TRAINER_LOG

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _log(tmp_path, entries) -> None:
    (tmp_path / TRAINER_LOG).write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_smooth_is_tensorboard_ema():
    assert smooth([]) == []
    assert smooth([3.0]) == [3.0]  # one point: weight 0
    values = [4.0, 2.0, 2.0, 1.0]
    weight = 1.8 * (1 / (1 + 2.718281828459045 ** (-0.05 * 4)) - 0.5)
    expected, last = [], 4.0
    for v in values:
        last = last * weight + (1 - weight) * v
        expected.append(last)
    assert smooth(values) == pytest.approx(expected)
    assert smooth(values)[-1] > 1.0  # lags behind the raw curve


def test_plot_loss_writes_both_pngs(tmp_path):
    entries = [{"current_steps": s, "total_steps": 20, "loss": 3.0 / s} for s in range(1, 21)]
    entries += [{"current_steps": s, "total_steps": 20, "eval_loss": 2.0 / s} for s in (10, 20)]
    _log(tmp_path, entries)

    written = plot_loss(tmp_path)

    assert written == [tmp_path / "training_loss.png", tmp_path / "training_eval_loss.png"]
    for path in written:
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "trainer_log.jsonl",
        "training_eval_loss.png",
        "training_loss.png",
    ]  # no temp file left behind


def test_keys_without_values_are_skipped(tmp_path):
    _log(tmp_path, [{"current_steps": 1, "total_steps": 2, "loss": 1.0}, {"current_steps": 2, "total_steps": 2}])
    assert plot_loss(tmp_path, keys=("loss", "eval_loss", "rewards/accuracies")) == [tmp_path / "training_loss.png"]


def test_no_log_plots_nothing(tmp_path):
    assert plot_loss(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_slash_in_key_makes_a_flat_file_name(tmp_path):
    _log(tmp_path, [{"current_steps": s, "rewards/accuracies": s / 4} for s in range(1, 5)])
    assert plot_loss(tmp_path, keys=("rewards/accuracies",)) == [tmp_path / "training_rewards_accuracies.png"]
