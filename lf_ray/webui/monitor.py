"""What the board shows while a job runs: progress and ETA from `trainer_log.jsonl`, the live loss curve,
and the log's tail."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_ray.tracking.plot import curve_points, loss_curve
from lf_ray.tracking.trainer_log import read_trainer_log


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    percent: float
    elapsed: str
    remaining: str

    @classmethod
    def from_entries(cls, entries: list[dict[str, Any]]) -> Progress | None:
        """The latest entry's position; None before the first log line."""
        steps = [e for e in entries if "current_steps" in e and "total_steps" in e]
        if not steps:
            return None
        last = steps[-1]
        total = int(last["total_steps"]) or 1
        return cls(
            step=int(last["current_steps"]),
            total=total,
            percent=float(last.get("percentage", 100.0 * int(last["current_steps"]) / total)),
            elapsed=str(last.get("elapsed_time", "")),
            remaining=str(last.get("remaining_time", "")),
        )


def read_progress(output_dir: str | Path | None) -> tuple[Progress | None, list[dict[str, Any]]]:
    if not output_dir or not Path(output_dir).is_dir():
        return None, []
    entries = read_trainer_log(output_dir)
    return Progress.from_entries(entries), entries


def progress_html(progress: Progress | None, label: str) -> str:
    """An HTML progress bar; `data-percent` / `data-step` let a browser test read it."""
    if progress is None:
        return f'<div class="lfr-progress" data-percent="0" data-step="0"><span>{html.escape(label)}</span></div>'
    percent = max(0.0, min(progress.percent, 100.0))
    text = f"{label} {progress.step}/{progress.total} ({percent:.0f}%) {progress.elapsed} < {progress.remaining}"
    return (
        f'<div class="lfr-progress" data-percent="{percent:.0f}" data-step="{progress.step}">'
        f'<progress max="100" value="{percent:.1f}" style="width:100%"></progress>'
        f"<span>{html.escape(text)}</span></div>"
    )


def loss_figure(entries: list[dict[str, Any]], title: str = "training loss"):
    """The live loss curve, or None until two losses are logged (a single point draws nothing useful)."""
    points = curve_points(entries, "loss")
    return loss_curve("loss", points, title) if len(points) >= 2 else None


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
"""Terminal colours (Ray prefixes worker lines with them): noise in a browser text box."""


def log_tail(text: str, lines: int = 20) -> str:
    return "\n".join(ANSI_ESCAPE.sub("", text).splitlines()[-lines:])
