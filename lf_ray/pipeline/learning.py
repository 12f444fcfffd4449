"""What `lf-ray run` prints after the run's table about what the model learned: a train step's reward curve
(grpo) in one line, and an eval step's answers before and after training (`compare_base_model: true`).

    grpo:
      reward over 30 logged steps: first 7 0.054 -> last 7 0.161 (+200%)
    eval:
      answers whose last number is the reference's: 4/32 before training, 20/32 after
      > What is 7 + 19? Answer with the number only.   (reference '26')
        before: 'To solve this problem, we need to find the sum of 7 and'
        after:  '7 + 19 = 22'
"""

from __future__ import annotations

import json
import re
import statistics
from typing import TYPE_CHECKING, Any

from lf_ray import storage

if TYPE_CHECKING:
    from lf_ray.pipeline.store import RunRecord

SHOWN_ANSWERS = 3
_SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>|<s>|</s>")
_ROLES = {"system", "user", "assistant"}


def reward_curve(entries: list[dict[str, Any]]) -> str | None:
    """The mean reward of the first and the last quarter of the logged steps, and the relative change."""
    rewards = [entry["reward"] for entry in entries if isinstance(entry.get("reward"), (int, float))]
    if len(rewards) < 2:
        return None
    k = max(1, len(rewards) // 4)
    first, last = statistics.mean(rewards[:k]), statistics.mean(rewards[-k:])
    change = f" ({(last - first) / abs(first):+.0%})" if first else ""
    return f"reward over {len(rewards)} logged steps: first {k} {first:.3f} -> last {k} {last:.3f}{change}"


def question(prompt: str) -> str:
    """The last user message of a rendered prompt (the template's special tokens and role lines dropped)."""
    lines = [line.strip() for line in _SPECIAL_TOKEN.sub("\n", prompt).splitlines() if line.strip()]
    after_user = [i + 1 for i, line in enumerate(lines) if line.lower() == "user" and i + 1 < len(lines)]
    if after_user:
        return lines[after_user[-1]]
    content = [line for line in lines if line.lower() not in _ROLES]
    return content[-1] if content else prompt[-80:]


def answers_before_after(rows: list[dict[str, Any]]) -> list[str]:
    """Lines comparing `base_predict` with `predict`: the numeric-match counts when every reference is a number,
    and the first few questions with both answers."""
    from lf_ray.train.rewards import numeric_match

    compared = [row for row in rows if "base_predict" in row]
    if not compared:
        return []
    lines = []
    labels = [row["label"] for row in compared]
    if all(re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", label) for label in labels):
        before = sum(numeric_match(completions=[row["base_predict"] for row in compared], answer=labels))
        after = sum(numeric_match(completions=[row["predict"] for row in compared], answer=labels))
        lines.append(
            f"answers whose last number is the reference's: {before:.0f}/{len(compared)} before training, "
            f"{after:.0f}/{len(compared)} after"
        )
    for row in compared[:SHOWN_ANSWERS]:
        lines.append(f"> {question(row['prompt'])}   (reference {row['label']!r})")
        lines += [f"  before: {row['base_predict']!r}", f"  after:  {row['predict']!r}"]
    return lines


def print_learning(record: RunRecord) -> None:
    from lf_ray.tracking.trainer_log import TRAINER_LOG

    for step_id, step in record.data["steps"].items():
        outputs = step.get("outputs") or {}
        lines: list[str] = []
        if step["uses"] == "train" and outputs.get("model"):
            log = storage.join(outputs["model"], TRAINER_LOG)
            if storage.is_file(log):
                text = storage.read_text(log)
                curve = reward_curve([json.loads(line) for line in text.splitlines() if line.strip()])
                lines += [curve] if curve else []
        if step["uses"] == "eval" and outputs.get("predictions") and storage.is_file(outputs["predictions"]):
            text = storage.read_text(outputs["predictions"])
            lines += answers_before_after([json.loads(line) for line in text.splitlines() if line.strip()])
        if lines:
            print(f"\n{step_id}:")
            print("\n".join(f"  {line}" for line in lines))
