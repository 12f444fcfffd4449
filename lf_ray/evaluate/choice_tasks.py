"""MMLU-style multiple-choice benchmarks, scored like LLaMA-Factory's `llamafactory-cli eval`.

A task is a directory::

    task.json             {"name": "demo_mmlu", "subjects": {"geography": "Geography", ...},
                           "choices": ["A", "B", "C", "D"], "lang": "en"}      ("lang" is optional)
    dev/<subject>.csv     few-shot examples
    test/<subject>.csv    the questions that are scored

Each CSV is UTF-8 with a header row `question,A,B,C,D,answer` (one column per choice letter), and `answer`
is one of the choice letters. Unlike LF, which samples the few-shot examples at random for every question,
the first `n_shot` dev rows are used, so a score is reproducible (the original MMLU harness does the same).

The model picks the choice letter whose next-token logit after the prompt is highest; accuracy is ×100.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lf_ray.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Lang = Literal["en", "zh"]

# LF's eval templates (src/llamafactory/eval/template.py): system line, choice line, answer cue.
_HEADERS = {
    "en": "The following are multiple choice questions (with answers) about {subject}.\n\n",
    "zh": "以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n",
}
_ANSWER_CUES = {"en": "\nAnswer:", "zh": "\n答案："}


@dataclass(frozen=True)
class ChoiceExample:
    """One question: its text, the text of each choice by letter, and the correct letter."""

    question: str
    options: dict[str, str]
    answer: str


@dataclass(frozen=True)
class ChoiceTask:
    """A loaded task: subjects (id -> display name) with their dev and test examples."""

    name: str
    choices: tuple[str, ...]
    subjects: dict[str, str]
    dev: dict[str, list[ChoiceExample]]
    test: dict[str, list[ChoiceExample]]
    lang: Lang = "en"


def _read_task_json(path: Path) -> dict:
    meta_path = path / "task.json"
    if not meta_path.is_file():
        raise DataError(
            f"{meta_path} not found. Fix: a choice task directory needs task.json with "
            '{"name", "subjects": {subject: display name}, "choices": ["A", "B", "C", "D"]}.'
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{meta_path} is not valid JSON: {err}. Fix: correct the JSON syntax.") from err
    missing = [key for key in ("name", "subjects", "choices") if key not in meta]
    if missing:
        raise DataError(f"{meta_path} lacks key(s) {missing}. Fix: add them (see lf_ray/assets/eval/demo_mmlu).")
    if not isinstance(meta["subjects"], dict) or not meta["subjects"]:
        raise DataError(f"{meta_path}: 'subjects' must be a non-empty object {{subject: display name}}.")
    choices = meta["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or len(set(choices)) != len(choices):
        raise DataError(f"{meta_path}: 'choices' must list at least two distinct letters, got {choices!r}.")
    if meta.get("lang", "en") not in _HEADERS:
        raise DataError(f"{meta_path}: 'lang' is {meta['lang']!r}; use one of {sorted(_HEADERS)}.")
    return meta


def _parse_row(row: dict[str, str | None], choices: Sequence[str], where: str) -> ChoiceExample:
    empty = [key for key in ("question", *choices, "answer") if not (row.get(key) or "").strip()]
    if empty:
        raise DataError(f"{where}: empty or missing value in column(s) {empty}. Fix: fill in every column.")
    answer = row["answer"].strip()
    if answer not in choices:
        raise DataError(f"{where}: answer {answer!r} is not one of the choices {list(choices)}. Fix the answer.")
    return ChoiceExample(question=row["question"], options={ch: row[ch] for ch in choices}, answer=answer)


def _read_split(csv_path: Path, choices: Sequence[str]) -> list[ChoiceExample]:
    if not csv_path.is_file():
        raise DataError(f"{csv_path} not found. Fix: every subject in task.json needs dev/ and test/ CSV files.")
    expected = ["question", *choices, "answer"]
    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != expected:
            raise DataError(
                f"{csv_path}: header is {reader.fieldnames}, expected {expected}. "
                "Fix: make the first row exactly that header."
            )
        examples = []
        for row in reader:
            if None in row:  # DictReader puts surplus cells under the key None
                raise DataError(f"{csv_path} row {reader.line_num}: more cells than the {len(expected)} columns.")
            examples.append(_parse_row(row, choices, f"{csv_path} row {reader.line_num}"))
    if not examples:
        raise DataError(f"{csv_path} has a header but no questions. Fix: add at least one row.")
    return examples


def load_choice_task(path: str | Path) -> ChoiceTask:
    """Read and validate a task directory; every problem is a DataError naming the file and row."""
    path = Path(path)
    meta = _read_task_json(path)
    choices = tuple(meta["choices"])
    dev = {subject: _read_split(path / "dev" / f"{subject}.csv", choices) for subject in meta["subjects"]}
    test = {subject: _read_split(path / "test" / f"{subject}.csv", choices) for subject in meta["subjects"]}
    return ChoiceTask(
        name=meta["name"],
        choices=choices,
        subjects=dict(meta["subjects"]),
        dev=dev,
        test=test,
        lang=meta.get("lang", "en"),
    )


def _format_question(example: ChoiceExample, lang: Lang) -> str:
    options = "".join(f"\n{letter}. {text}" for letter, text in example.options.items())
    return example.question + options + _ANSWER_CUES[lang]


def build_prompt(
    example: ChoiceExample, few_shot_examples: Sequence[ChoiceExample], subject: str, lang: Lang = "en"
) -> str:
    """LF's eval prompt as plain text: header, solved examples ("Answer: X"), then the question ending in the cue."""
    shots = "".join(f"{_format_question(shot, lang)} {shot.answer}\n\n" for shot in few_shot_examples)
    return _HEADERS[lang].format(subject=subject) + shots + _format_question(example, lang)


def choice_token_ids(tokenizer: PreTrainedTokenizerBase, choices: Sequence[str]) -> list[list[int]]:
    """Token ids that spell each choice letter right after the answer cue: "A" and " A".

    LF scores the last token of `encode("A")`, which is the right one for SentencePiece tokenizers ("▁A"), but
    byte-level BPE tokenizers spell the answer after "Answer:" as " A" ("ĠA"), a different id. Both spellings
    are kept and a letter scores the higher of its logits.
    """
    ids = []
    for letter in choices:
        spellings = {tokenizer.encode(text, add_special_tokens=False)[-1] for text in (letter, f" {letter}")}
        ids.append(sorted(spellings))
    seen: dict[int, str] = {}
    for letter, letter_ids in zip(choices, ids, strict=True):
        for token_id in letter_ids:
            if token_id in seen:
                raise DataError(
                    f"Choices {seen[token_id]!r} and {letter!r} map to the same token id {token_id} in this "
                    "tokenizer, so the model cannot tell them apart. Fix: use distinct single-character choices."
                )
            seen[token_id] = letter
    return ids


def score_choices(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    choices: Sequence[str],
    batch_size: int = 8,
) -> list[str]:
    """The choice letter each prompt's next-token logits favour, reading the last real (unpadded) position.

    Prompts are encoded with the tokenizer's special tokens (BOS); pass a model in eval mode.
    """
    import torch

    letter_ids = choice_token_ids(tokenizer, choices)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    picked: list[str] = []
    for start in range(0, len(prompts), batch_size):
        encoded = [tokenizer.encode(prompt) for prompt in prompts[start : start + batch_size]]
        width = max(len(ids) for ids in encoded)
        # Right padding keeps every real token at its natural position (LF does the same for llama2 overflow).
        input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in encoded], device=device)
        attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded], device=device)
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        last = logits[torch.arange(len(encoded), device=device), attention_mask.sum(dim=-1) - 1].float()
        scores = torch.stack([last[:, ids].max(dim=-1).values for ids in letter_ids], dim=-1)
        picked.extend(choices[index] for index in scores.argmax(dim=-1).tolist())
    return picked


def evaluate_choice_task(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: ChoiceTask,
    n_shot: int = 5,
    batch_size: int = 8,
) -> dict[str, dict[str, float] | float]:
    """Accuracy ×100 per subject and over all test questions pooled (LF's "Average")."""
    if n_shot < 0 or batch_size < 1:
        raise ValueError(f"n_shot must be >= 0 and batch_size >= 1, got n_shot={n_shot}, batch_size={batch_size}.")
    per_subject: dict[str, float] = {}
    correct_total = question_total = 0
    for subject, display_name in task.subjects.items():
        shots = task.dev[subject][:n_shot]
        examples = task.test[subject]
        prompts = [build_prompt(example, shots, display_name, task.lang) for example in examples]
        predictions = score_choices(model, tokenizer, prompts, task.choices, batch_size)
        correct = sum(pred == example.answer for pred, example in zip(predictions, examples, strict=True))
        per_subject[subject] = 100.0 * correct / len(examples)
        correct_total += correct
        question_total += len(examples)
    return {"per_subject": per_subject, "average": 100.0 * correct_total / question_total}
