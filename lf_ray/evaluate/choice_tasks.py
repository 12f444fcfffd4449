"""MMLU-style multiple-choice benchmarks, scored like LLaMA-Factory's `llamafactory-cli eval`.

A task is a directory in one of two layouts, told apart by what it holds. LLaMA-Factory's own mmlu / cmmlu /
ceval folders (mapping.json) are read by `lf_task_layout`; lf-ray's layout is::

    task.json             {"name": "demo_mmlu", "subjects": {"geography": "Geography", ...},
                           "choices": ["A", "B", "C", "D"], "lang": "en"}      ("lang" is optional)
    dev/<subject>.csv     few-shot examples
    test/<subject>.csv    the questions that are scored (val/<subject>.csv with `task_split: validation`)

Each CSV is UTF-8 with a header row `question,A,B,C,D,answer` (one column per choice letter), and `answer`
is one of the choice letters. Unlike LF, which samples the few-shot examples at random for every question,
the first `n_shot` dev rows are used, so a score is reproducible (the original MMLU harness does the same).

The model picks the choice letter whose next-token logit after the prompt is highest; accuracy is ×100, per
subject, per category (when the task gives categories) and over all questions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lf_ray.errors import DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Lang = Literal["en", "zh"]
Split = Literal["test", "validation"]

TASK_FILE = "task.json"  # lf-ray's layout
MAPPING_FILE = "mapping.json"  # LLaMA-Factory's layout
LF_CATEGORIES = ("STEM", "Social Sciences", "Humanities", "Other")
"""The categories of LF's mapping.json files, in the order LF prints their scores (after "Average")."""

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
    """A loaded task: subjects (id -> display name) with their few-shot (dev) and scored examples."""

    name: str
    choices: tuple[str, ...]
    subjects: dict[str, str]
    dev: dict[str, list[ChoiceExample]]
    questions: dict[str, list[ChoiceExample]]  # the scored split of each subject
    lang: Lang = "en"
    split: Split = "test"
    categories: dict[str, str] = field(default_factory=dict)  # subject -> category, when the task names them


def _read_task_json(path: Path) -> dict:
    meta_path = path / TASK_FILE
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


def example_from_row(row: dict[str, str | None], choices: Sequence[str], where: str) -> ChoiceExample:
    """A validated example from a row keyed `question`, the choice letters and `answer`; `where` names its file
    and row in errors."""
    empty = [key for key in ("question", *choices, "answer") if not (row.get(key) or "").strip()]
    if empty:
        raise DataError(f"{where}: empty or missing value in column(s) {empty}. Fix: fill in every column.")
    answer = row["answer"].strip()
    if answer not in choices:
        raise DataError(f"{where}: answer {answer!r} is not one of the choices {list(choices)}. Fix the answer.")
    return ChoiceExample(question=row["question"], options={ch: row[ch] for ch in choices}, answer=answer)


def _read_split(csv_path: Path, choices: Sequence[str]) -> list[ChoiceExample]:
    if not csv_path.is_file():
        folders = f"dev/ and {csv_path.parent.name}/"
        raise DataError(f"{csv_path} not found. Fix: every subject in task.json needs {folders} CSV files.")
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
            examples.append(example_from_row(row, choices, f"{csv_path} row {reader.line_num}"))
    if not examples:
        raise DataError(f"{csv_path} has a header but no questions. Fix: add at least one row.")
    return examples


def load_choice_task(path: str | Path, split: Split = "test", lang: Lang | None = None) -> ChoiceTask:
    """Read and validate a task directory in either layout; every problem is a DataError naming the file and row.

    `split` is the one scored; `lang` overrides the task's own language (task.json's, or LF's for the task).
    """
    path = Path(path)
    if (path / TASK_FILE).is_file():
        return _load_task_json_layout(path, split, lang)
    if (path / MAPPING_FILE).is_file():
        from lf_ray.evaluate.lf_task_layout import load_lf_task  # imported here: it builds on this module's types

        return load_lf_task(path, split, lang)
    if _looks_like_lf_task(path):
        raise DataError(
            f"{path} holds LLaMA-Factory task data but no {MAPPING_FILE}, which lists its subjects. Fix: copy "
            f"{MAPPING_FILE} from LLaMA-Factory's evaluation/{path.name}/ into {path}."
        )
    raise DataError(
        f"{path}: neither {TASK_FILE} nor {MAPPING_FILE} found. Fix: point `task_dir` / `task` at a task folder, "
        f"in lf-ray's layout ({TASK_FILE}, dev/, test/; see lf_ray/assets/eval/demo_mmlu) or LLaMA-Factory's "
        f"mmlu / cmmlu / ceval folder ({MAPPING_FILE} with the data)."
    )


def _load_task_json_layout(path: Path, split: Split, lang: Lang | None) -> ChoiceTask:
    meta = _read_task_json(path)
    choices = tuple(meta["choices"])
    folder = "test" if split == "test" else "val"
    return ChoiceTask(
        name=meta["name"],
        choices=choices,
        subjects=dict(meta["subjects"]),
        dev={subject: _read_split(path / "dev" / f"{subject}.csv", choices) for subject in meta["subjects"]},
        questions={subject: _read_split(path / folder / f"{subject}.csv", choices) for subject in meta["subjects"]},
        lang=lang or meta.get("lang", "en"),
        split=split,
    )


def has_task_file(path: Path) -> bool:
    """Whether `path` holds a task in either layout (task.json or LF's mapping.json); reads nothing else."""
    return (path / TASK_FILE).is_file() or (path / MAPPING_FILE).is_file()


def _looks_like_lf_task(path: Path) -> bool:
    """LF's folder without its mapping.json: the loading script, the zip, or mmlu's data/ folder."""
    return (path / "data").is_dir() or any(path.glob("*.zip")) or (path / f"{path.name}.py").is_file()


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
    """Accuracy ×100 per subject, per category (empty when the task has none) and over all scored questions
    pooled (LF's "Average"); a category pools its subjects' questions, as LF does."""
    if n_shot < 0 or batch_size < 1:
        raise ValueError(f"n_shot must be >= 0 and batch_size >= 1, got n_shot={n_shot}, batch_size={batch_size}.")
    per_subject: dict[str, float] = {}
    tallies: dict[str, list[int]] = {}  # category -> [correct, questions]
    correct_total = question_total = 0
    for subject, display_name in task.subjects.items():
        shots = task.dev[subject][:n_shot]
        examples = task.questions[subject]
        prompts = [build_prompt(example, shots, display_name, task.lang) for example in examples]
        predictions = score_choices(model, tokenizer, prompts, task.choices, batch_size)
        correct = sum(pred == example.answer for pred, example in zip(predictions, examples, strict=True))
        per_subject[subject] = 100.0 * correct / len(examples)
        if subject in task.categories:
            tally = tallies.setdefault(task.categories[subject], [0, 0])
            tally[0], tally[1] = tally[0] + correct, tally[1] + len(examples)
        correct_total += correct
        question_total += len(examples)
    order = [*[c for c in LF_CATEGORIES if c in tallies], *[c for c in tallies if c not in LF_CATEGORIES]]
    per_category = {category: 100.0 * tallies[category][0] / tallies[category][1] for category in order}
    return {"per_subject": per_subject, "per_category": per_category, "average": 100.0 * correct_total / question_total}


def format_scores(scores: dict[str, dict[str, float] | float]) -> str:
    """The score table LF prints and writes to results.log: "Average", then each category, two decimals."""
    rows = {"Average": scores["average"], **scores["per_category"]}
    return "\n".join(f"{name:>15}: {value:.2f}" for name, value in rows.items())
