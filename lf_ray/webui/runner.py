"""LLaMA Board's `Runner` for Ray: check the form, write the config, launch `lf-ray <command>` (a Ray job on
a cluster, a local process otherwise), follow it, abort it, report how it ended.

`start` is a generator of `Update`s: the board streams each one to the browser, so the log tail, the
progress bar and the loss plot move while the job runs. One job at a time, as on LLaMA Board.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_ray.artifacts import write_text
from lf_ray.errors import LfRayError
from lf_ray.evaluate.evaluator import PREDICTIONS_FILE
from lf_ray.webui.board_args import (
    BUILDERS,
    CONFIG_NAMES,
    Command,
    Problem,
    check_config,
    check_form,
    config_yaml,
    output_dir_of,
    preview_text,
)
from lf_ray.webui.board_configs import save_run_form
from lf_ray.webui.jobs import BoardJob, LocalJob, launch
from lf_ray.webui.locales import message
from lf_ray.webui.monitor import log_tail, loss_figure, progress_html, read_progress
from lf_ray.webui.roots import AllowedRoots

POLL_S = 1.0
LOG_LINES = 20
SAMPLE_PREDICTIONS = 5


@dataclass
class Update:
    """One refresh of a tab's output widgets."""

    text: str
    progress: str = ""
    figure: Any = None
    metrics: dict[str, Any] | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False


@dataclass
class Runner:
    demo_mode: bool = False
    jobs_dir: Path = Path("saves/.board_jobs")
    roots: AllowedRoots = field(default_factory=lambda: AllowedRoots.of([]))
    job: BoardJob | None = None
    aborted: bool = False

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.state() == "running"

    def _prepare(self, command: Command, state: Mapping[str, Any], *, launching: bool) -> Problem | dict[str, Any]:
        problem = check_form(command, state, demo_mode=self.demo_mode and launching, running=launching and self.running)
        if problem:
            return problem
        args = BUILDERS[command](state)
        try:
            self.roots.check_config(args)
        except LfRayError as err:
            return Problem("err_config", {"error": str(err)})
        problem = check_config(command, args) or (_train_problem(args) if command == "train" else None)
        return problem or args

    def job_dir(self, command: Command, state: Mapping[str, Any]) -> Path:
        """Where the config and the log go: the output dir of a training run (as LLaMA Board does, so a run can
        be resumed from it); for eval and export, whose output folders are replaced whole, a folder named after
        their output under `jobs_dir` (a re-run to the same output replaces it, as it replaces the output)."""
        output_dir = output_dir_of(command, state) or "."
        if command == "train":
            return Path(output_dir)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(output_dir).expanduser().resolve()).strip("/"))
        return self.jobs_dir / f"{command}-{slug}"

    def preview(self, command: Command, state: Mapping[str, Any]) -> str:
        lang = state.get("top.lang") or "en"
        prepared = self._prepare(command, state, launching=False)
        if isinstance(prepared, Problem):
            return message(prepared.key, lang, **prepared.values)
        config_path = self.job_dir(command, state) / CONFIG_NAMES[command]
        return preview_text(command, prepared, str(config_path), state.get("top.ray_address"))

    def start(self, command: Command, state: Mapping[str, Any]) -> Iterator[Update]:
        lang = state.get("top.lang") or "en"
        prepared = self._prepare(command, state, launching=True)
        if isinstance(prepared, Problem):
            yield Update(message(prepared.key, lang, **prepared.values), done=True)
            return
        job_dir = self.job_dir(command, state)
        job_dir.mkdir(parents=True, exist_ok=True)
        config_path = job_dir / CONFIG_NAMES[command]
        write_text(config_path, config_yaml(prepared))
        if command == "train":
            save_run_form(job_dir, state)
        self.aborted = False
        address = state.get("top.ray_address")
        try:
            self.job = launch(command, config_path, job_dir, address, self.jobs_dir / "staging")
        except (ConnectionError, RuntimeError, OSError) as err:  # no cluster there, or it refused the job
            yield Update(message("err_launch", lang, address=address or "local", error=err), done=True)
            return
        yield from self._follow(command, state, lang)

    def _follow(self, command: Command, state: Mapping[str, Any], lang: str) -> Iterator[Update]:
        job, running = self.job, message("label_running", lang)
        assert job is not None
        started = message("info_started", lang, job=job.name)  # stays on top of the log: the job to look for
        output_dir = output_dir_of(command, state)
        while job.state() == "running":
            tail = log_tail(job.log_text(), LOG_LINES)
            text = message("info_aborting", lang) if self.aborted else f"{started}\n\n{tail}"
            if command == "train":
                progress, entries = read_progress(output_dir)
                yield Update(text, progress_html(progress, running), loss_figure(entries))
            else:
                yield Update(text, progress_html(None, running))
            time.sleep(POLL_S)
        yield self._final(command, job, output_dir, lang)

    def _final(self, command: Command, job: BoardJob, output_dir: str | None, lang: str) -> Update:
        progress, entries = read_progress(output_dir) if command == "train" else (None, [])
        state = job.state()
        if self.aborted or state == "stopped":
            text = message("info_aborted", lang)
        elif state == "succeeded":
            done = message("info_exported" if command == "export" else "info_finished", lang, output=output_dir)
            text = f"{done}\n\n{log_tail(job.log_text(), LOG_LINES)}"
        else:
            text = message("err_failed", lang, detail=job.exit_detail(), tail=log_tail(job.log_text(), LOG_LINES))
        update = Update(text, progress_html(progress, ""), loss_figure(entries), done=True)
        if command == "eval" and state == "succeeded" and output_dir:
            update.metrics, update.predictions = eval_results(Path(output_dir))
        return update

    def abort(self) -> None:
        if self.job is not None and self.job.state() == "running":
            self.aborted = True
            self.job.abort()

    def close(self) -> str | None:
        """When the board stops: a local job stops with it (nothing is left running unowned); a Ray job belongs to
        its cluster, which is not asked (it may be gone). Returns what to tell the user about it."""
        if isinstance(self.job, LocalJob):
            if self.job.state() != "running":
                return None
            self.abort()
            return f"stopped the board's running job ({self.job.name})"
        if self.job is not None:
            return f"the last Ray job it submitted, {self.job.name}, is its cluster's (`ray job stop` stops it)"
        return None


def _train_problem(args: Mapping[str, Any]) -> Problem | None:
    """What `lf-ray train` checks before it tokenizes anything (its output, checkpoint, DeepSpeed file, targets)."""
    from lf_ray.config import prepare_config
    from lf_ray.train.launcher import check_trainable

    try:
        check_trainable(prepare_config(None, base=args))
    except LfRayError as err:
        return Problem("err_config", {"error": str(err)})
    return None


def eval_results(results_dir: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """`all_results.json` and the first generated predictions of an eval run."""
    metrics_path, predictions_path = results_dir / "all_results.json", results_dir / PREDICTIONS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None
    predictions = []
    if predictions_path.is_file():
        with open(predictions_path, encoding="utf-8") as lines:
            predictions = [json.loads(line) for line in itertools.islice(lines, SAMPLE_PREDICTIONS)]
    return metrics, predictions
