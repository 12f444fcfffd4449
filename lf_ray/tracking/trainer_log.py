"""LLaMA-Factory's `trainer_log.jsonl`: one JSON line per Trainer log event, written by the main process.

The keys are LLaMA-Factory's (`current_steps`, `total_steps`, `loss`, `eval_loss`, `lr`, `epoch`,
`percentage`, `elapsed_time`, `remaining_time`, and `throughput` / `total_tokens` when the Trainer counts
tokens), so LlamaBoard-style readers, `plot_loss` and the driver's progress line all read the same file. grpo adds
TRL's RL metrics under TRL's names: `reward_std`, `kl`, `entropy`, `rewards/<function>/mean` and `/std`,
`completions/mean_length`, `completions/clipped_ratio`, `clip_ratio/region_mean`, and `eval_` + each of them (and
`eval_reward`) when it evaluates; ppo adds `kl_coef`, `policy_loss`, `value_loss`, `clip_ratio` and
`value_clip_ratio`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

TRAINER_LOG = "trainer_log.jsonl"

# Trainer / TRL log key → trainer_log key, for the values copied as they are.
_COPIED_KEYS = {
    "loss": "loss",
    "eval_loss": "eval_loss",
    "predict_loss": "predict_loss",
    "reward": "reward",
    "rewards/accuracies": "accuracy",
    "learning_rate": "lr",
    "epoch": "epoch",
}
_RL_KEYS = re.compile(
    r"(eval_)?(reward|reward_std|kl|entropy|rewards/.+/(mean|std)|completions/(mean_length|clipped_ratio)"
    r"|clip_ratio/region_mean)"
    r"|kl_coef|policy_loss|value_loss|clip_ratio|value_clip_ratio"
)
"""grpo's metrics (and their evaluation), copied under TRL's names; ppo's, and its KL coefficient, policy and value
losses and clipped shares."""


def format_duration(seconds: float) -> str:
    """LLaMA-Factory's "H:MM:SS" (whole seconds, as `str(timedelta)` prints them)."""
    return str(timedelta(seconds=int(max(seconds, 0))))


class TrainerLogCallback(TrainerCallback):
    """Appends one line to `<output_dir>/trainer_log.jsonl` per `on_log`, on the world's main process only.

    Resuming is append-safe: at train begin the lines logged after the resumed step (by the run that
    crashed past its last checkpoint) are dropped, so every step appears once. A fresh start (step 0)
    therefore starts a fresh log. Times and throughput count this session only, so a resumed run's
    ETA is not skewed by the steps it skipped.
    """

    def __init__(self) -> None:
        self._start_time = 0.0
        self._start_step = 0
        self._start_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._start_time = time.time()
        self._start_step = state.global_step
        self._start_tokens = state.num_input_tokens_seen or 0
        if state.is_world_process_zero:
            os.makedirs(args.output_dir, exist_ok=True)
            truncate_trainer_log(Path(args.output_dir) / TRAINER_LOG, state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        if logs is None:
            logs = state.log_history[-1] if state.log_history else {}
        entry = self._entry(state, logs)
        os.makedirs(args.output_dir, exist_ok=True)
        with open(Path(args.output_dir) / TRAINER_LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def _entry(self, state: TrainerState, logs: Mapping[str, Any]) -> dict[str, Any]:
        if not self._start_time:  # evaluate() without train(): time from the first log
            self._start_time = time.time()
        elapsed = time.time() - self._start_time
        steps_done = state.global_step - self._start_step
        remaining = (state.max_steps - state.global_step) * elapsed / steps_done if steps_done > 0 else 0.0
        entry: dict[str, Any] = {
            "current_steps": state.global_step,
            "total_steps": state.max_steps,
            **{ours: logs[theirs] for theirs, ours in _COPIED_KEYS.items() if logs.get(theirs) is not None},
            **{key: value for key, value in logs.items() if _RL_KEYS.fullmatch(key) and value is not None},
            "percentage": round(state.global_step / state.max_steps * 100, 2) if state.max_steps else 100,
            "elapsed_time": format_duration(elapsed),
            "remaining_time": format_duration(remaining),
        }
        if state.num_input_tokens_seen:
            session_tokens = state.num_input_tokens_seen - self._start_tokens
            entry["throughput"] = round(session_tokens / elapsed, 2) if elapsed > 0 else 0.0
            entry["total_tokens"] = state.num_input_tokens_seen
        return entry


def truncate_trainer_log(path: Path, step: int) -> None:
    """Keep only the lines logged at or before `step` (atomically: temp file, then rename)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if (logged := _step_of(line)) is not None and logged <= step]
    if len(kept) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


def _step_of(line: str) -> int | None:
    try:
        return int(json.loads(line)["current_steps"])
    except (ValueError, KeyError, TypeError):
        return None  # a torn or foreign line: dropped on truncation, skipped when reading


def read_trainer_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a `trainer_log.jsonl` (or of the one inside a directory); [] if it does not exist yet.

    A line that does not parse (the last one while another process is writing it) is skipped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRAINER_LOG
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def format_progress(entry: Mapping[str, Any]) -> str:
    """One progress line, e.g. `step 12/100 (12.0%) | loss 1.2345 | 812 tok/s | elapsed 0:00:31 | ETA 0:03:47`."""
    parts = [
        f"step {entry.get('current_steps', '?')}/{entry.get('total_steps', '?')} ({entry.get('percentage', 0):.1f}%)"
    ]
    for key in ("loss", "eval_loss", "reward"):
        if entry.get(key) is not None:
            parts.append(f"{key} {entry[key]:.4f}")
    if entry.get("throughput") is not None:
        parts.append(f"{entry['throughput']:,.0f} tok/s")
    if entry.get("elapsed_time"):
        parts.append(f"elapsed {entry['elapsed_time']}")
    if entry.get("remaining_time"):
        parts.append(f"ETA {entry['remaining_time']}")
    return " | ".join(parts)
