"""LLaMA-Factory's loss plots (`training_loss.png`, `training_eval_loss.png`) drawn from `trainer_log.jsonl`, and
grpo's mean reward (`training_reward.png`).

Each figure shows the raw curve faintly and an EMA-smoothed one on top, as LLaMA-Factory's `plot_loss`
does. Drawing uses matplotlib's Agg canvas on a standalone `Figure` (no pyplot global state, no display),
so it is safe in Ray workers and threads.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from lf_ray.tracking.trainer_log import read_trainer_log

logger = logging.getLogger(__name__)

_COLOR = "#1f77b4"


def smooth(values: Sequence[float]) -> list[float]:
    """TensorBoard-style exponential moving average; the longer the curve, the heavier the smoothing."""
    if not values:
        return []
    weight = 1.8 * (1 / (1 + math.exp(-0.05 * len(values))) - 0.5)  # sigmoid: 0 for 1 point, → 0.9
    smoothed, last = [], values[0]
    for value in values:
        last = last * weight + (1 - weight) * value
        smoothed.append(last)
    return smoothed


def curve_points(entries: Sequence[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) of every trainer-log entry that has a value for `key`."""
    return [(e["current_steps"], e[key]) for e in entries if e.get(key) is not None and "current_steps" in e]


def plot_loss(output_dir: str | os.PathLike, keys: Sequence[str] = ("loss", "eval_loss", "reward")) -> list[Path]:
    """Write `training_<key>.png` into `output_dir` for every key that `trainer_log.jsonl` has values of.

    Returns the paths written; a key with no values (no evaluation ran) is skipped with a log message.
    """
    output_dir = Path(output_dir)
    entries = read_trainer_log(output_dir)
    written = []
    for key in keys:
        points = curve_points(entries, key)
        if not points:
            logger.info("no %r values in %s; skipping its plot", key, output_dir / "trainer_log.jsonl")
            continue
        path = output_dir / f"training_{key.replace('/', '_')}.png"
        _save_curve(path, key, points, title=f"training {key} of {output_dir}")
        written.append(path)
    return written


def loss_curve(key: str, points: list[tuple[int, float]], title: str):
    """A matplotlib `Figure` of one curve, raw and smoothed (also what the web board shows live)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [step for step, _ in points]
    values = [value for _, value in points]
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    ax.plot(steps, values, color=_COLOR, alpha=0.4, label="original")
    ax.plot(steps, smooth(values), color=_COLOR, label="smoothed")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.legend()
    return fig


def _save_curve(path: Path, key: str, points: list[tuple[int, float]], title: str) -> None:
    fig = loss_curve(key, points, title)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
