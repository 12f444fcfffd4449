"""Small LLaMA-Factory task folders (mmlu, cmmlu, ceval) in LF's own layouts: 2 subjects, 3 dev + 4 test rows.

Each subject's test answers are fixed (`TEST_ANSWERS`) so a model that always answers "B" scores a known
accuracy per subject and per category.
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

SUBJECTS = {
    "mmlu": {
        "abstract_algebra": {"name": "abstract algebra", "category": "STEM"},
        "world_religions": {"name": "world religions", "category": "Humanities"},
    },
    "cmmlu": {
        "agronomy": {"name": "农学", "category": "Other"},
        "chinese_history": {"name": "中国历史", "category": "Humanities"},
    },
    "ceval": {
        "accountant": {"name": "注册会计师", "category": "Other"},
        "advanced_mathematics": {"name": "高等数学", "category": "STEM"},
    },
}
DEV_ANSWERS = "ACD"
TEST_ANSWERS = ("BBAC", "ABCD")  # first subject, second subject: "always B" scores 50 and 25
VAL_ANSWERS = "DB"


def question_rows(subject: str, split: str, answers: str) -> list[list[str]]:
    """question, A, B, C, D, answer; option D holds a comma, so the writer must quote it."""
    return [
        [f"{subject} {split} question {i}?", f"{i}0", f"{i}1", f"{i}2", f"{i}3, or none", answer]
        for i, answer in enumerate(answers)
    ]


def _write_csv(path: Path, rows: list[list[str]], lineterminator: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator=lineterminator).writerows(rows)


def _splits(index: int) -> dict[str, str]:
    return {"dev": DEV_ANSWERS, "val": VAL_ANSWERS, "test": TEST_ANSWERS[index]}


def _write_mmlu(folder: Path, subject: str, index: int) -> None:
    """data/<split>/<subject>_<split>.csv, no header row."""
    for split, answers in _splits(index).items():
        _write_csv(folder / "data" / split / f"{subject}_{split}.csv", question_rows(subject, split, answers))


def _write_cmmlu(folder: Path, subject: str, index: int) -> None:
    """dev/ and test/<subject>.csv (no validation split), pandas' index column first."""
    for split in ("dev", "test"):
        rows = question_rows(subject, split, _splits(index)[split])
        table = [["", "Question", "A", "B", "C", "D", "Answer"], *([str(i), *row] for i, row in enumerate(rows))]
        _write_csv(folder / split / f"{subject}.csv", table)


def _write_ceval(folder: Path, subject: str, index: int) -> None:
    """dev (with explanations), val and test (without answers) as <subject>_<split>.csv, CRLF line ends."""
    header = ["id", "question", "A", "B", "C", "D", "answer"]
    for split, answers in _splits(index).items():
        rows = [[str(i), *row] for i, row in enumerate(question_rows(subject, split, answers))]
        if split == "dev":
            table = [[*header, "explanation"], *([*row, f"explained {row[0]}"] for row in rows)]
        elif split == "test":
            table = [header[:-1], *(row[:-1] for row in rows)]
        else:
            table = [header, *rows]
        _write_csv(folder / split / f"{subject}_{split}.csv", table, lineterminator="\r\n")


WRITERS = {"mmlu": _write_mmlu, "cmmlu": _write_cmmlu, "ceval": _write_ceval}


def write_lf_task(task_dir: Path, task: str) -> Path:
    """`task_dir/<task>/` with mapping.json and the unzipped CSV folders; returns the task folder."""
    folder = task_dir / task
    folder.mkdir(parents=True)
    (folder / "mapping.json").write_text(json.dumps(SUBJECTS[task], ensure_ascii=False, indent=2), encoding="utf-8")
    for index, subject in enumerate(SUBJECTS[task]):
        WRITERS[task](folder, subject, index)
    return folder


def zip_lf_task(folder: Path) -> Path:
    """Pack the CSV folders into `<task>.zip` beside mapping.json, as LF ships them, and remove the folders."""
    archive = folder / f"{folder.name}.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*.csv")):
            handle.write(path, path.relative_to(folder).as_posix())
    for top in ("data", "dev", "val", "test"):
        if (folder / top).is_dir():
            shutil.rmtree(folder / top)
    return archive
