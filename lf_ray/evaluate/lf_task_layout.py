"""LLaMA-Factory's own mmlu / cmmlu / ceval task folders, read as `ChoiceTask`s.

LF ships each benchmark as `evaluation/<task>/`: mapping.json (`{subject: {"name", "category"}}`), a datasets
loading script and `<task>.zip`, whose per-subject CSVs the script reads. lf-ray reads the same CSVs, from the
zip beside mapping.json or from the folders it unpacks to (`unzip mmlu.zip` in the task folder). The three
layouts, told apart by where the dev files lie:

    task   few-shot ("train")     validation              test                     header row
    mmlu   data/dev/<s>_dev.csv   data/val/<s>_val.csv    data/test/<s>_test.csv   none: question,A,B,C,D,answer
    cmmlu  dev/<s>.csv            (none)                  test/<s>.csv             ,Question,A,B,C,D,Answer
    ceval  dev/<s>_dev.csv        val/<s>_val.csv         test/<s>_test.csv        id,question,A,B,C,D,answer,...

C-Eval's test answers are not public (its test CSVs have no answer column), so ceval is scored on validation.
Cells are kept as written, where LF's pandas turns "0.50" into "0.5" and "None" into NaN.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lf_ray.errors import DataError
from lf_ray.evaluate.choice_tasks import MAPPING_FILE, ChoiceExample, ChoiceTask, Lang, Split, example_from_row

CHOICES = ("A", "B", "C", "D")


@dataclass(frozen=True)
class LfLayout:
    """Where one LF task keeps each split of a subject, and how its CSV columns are named."""

    name: str
    files: dict[str, str]  # split ("dev" for the few-shot examples) -> path with {subject}
    header: tuple[str, str] | None  # the question and answer column names; None: no header row
    lang: Lang


_LAYOUTS = (
    LfLayout(
        "mmlu",
        {
            "dev": "data/dev/{subject}_dev.csv",
            "validation": "data/val/{subject}_val.csv",
            "test": "data/test/{subject}_test.csv",
        },
        None,
        "en",
    ),
    LfLayout("cmmlu", {"dev": "dev/{subject}.csv", "test": "test/{subject}.csv"}, ("Question", "Answer"), "zh"),
    LfLayout(
        "ceval",
        {"dev": "dev/{subject}_dev.csv", "validation": "val/{subject}_val.csv", "test": "test/{subject}_test.csv"},
        ("question", "answer"),
        "zh",
    ),
)
LAYOUTS = {layout.name: layout for layout in _LAYOUTS}


class TaskFiles:
    """The task's CSVs, in folders under the task directory or inside its zip (paths as in the zip)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archive: zipfile.ZipFile | None = None
        if not ((root / "data").is_dir() or (root / "dev").is_dir()):
            zips = sorted(root.glob("*.zip"))
            preferred = [path for path in zips if path.stem == root.name]
            if not zips:
                raise DataError(
                    f"{root} has {MAPPING_FILE} but no data: no dev/ (cmmlu, ceval) or data/dev/ (mmlu) folder and "
                    f"no zip. Fix: put LLaMA-Factory's {root.name}.zip beside {MAPPING_FILE}, or unzip it there."
                )
            self.archive = zipfile.ZipFile((preferred or zips)[0])

    def __enter__(self) -> TaskFiles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.archive is not None:
            self.archive.close()

    @property
    def location(self) -> str:
        return self.archive.filename if self.archive is not None else str(self.root)

    def names(self) -> list[str]:
        if self.archive is not None:
            return self.archive.namelist()
        return [path.relative_to(self.root).as_posix() for path in self.root.rglob("*.csv")]

    def where(self, name: str) -> str:
        return f"{self.location}:{name}" if self.archive is not None else str(self.root / name)

    def read_text(self, name: str) -> str | None:
        """The file's text (a leading BOM dropped), or None when it is absent."""
        if self.archive is not None:
            try:
                return self.archive.read(name).decode("utf-8-sig")
            except KeyError:
                return None
        path = self.root / name
        return path.read_text(encoding="utf-8-sig") if path.is_file() else None


def load_lf_task(path: Path, split: Split = "test", lang: Lang | None = None) -> ChoiceTask:
    """The task in LF's folder `path`: subjects, names and categories from mapping.json, `split` scored."""
    mapping = read_mapping(path / MAPPING_FILE)
    with TaskFiles(path) as files:
        layout = detect_layout(files)
        if split not in layout.files:
            raise DataError(
                f"{path} is LLaMA-Factory's {layout.name} layout, which has no {split} split. "
                f"Fix: set `task: {path.name}_test`."
            )
        dev = {subject: read_subject(files, layout, "dev", subject) for subject in mapping}
        questions = {subject: read_subject(files, layout, split, subject) for subject in mapping}
    return ChoiceTask(
        name=path.name,
        choices=CHOICES,
        subjects={subject: entry["name"] for subject, entry in mapping.items()},
        dev=dev,
        questions=questions,
        lang=lang or layout.lang,
        split=split,
        categories={subject: entry["category"] for subject, entry in mapping.items()},
    )


def read_mapping(mapping_path: Path) -> dict[str, dict[str, str]]:
    """mapping.json, checked: every subject maps to its display name and category."""
    try:
        mapping = json.loads(mapping_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{mapping_path} is not valid JSON: {err}. Fix: correct the JSON syntax.") from err
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(
            f'{mapping_path} must be a non-empty object {{subject: {{"name": ..., "category": ...}}}}. '
            "Fix: use LLaMA-Factory's mapping.json for the task."
        )
    for subject, entry in mapping.items():
        if not (isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in ("name", "category"))):
            raise DataError(
                f'{mapping_path}: subject {subject!r} is {entry!r}, not {{"name": ..., "category": ...}}. '
                'Fix: give it both, e.g. {"name": "abstract algebra", "category": "STEM"}.'
            )
    return mapping


def detect_layout(files: TaskFiles) -> LfLayout:
    """mmlu keeps its dev files in data/dev/; ceval names them <subject>_dev.csv, cmmlu <subject>.csv."""
    dev_files = [
        name for name in files.names() if name.endswith(".csv") and name.rpartition("/")[0] in ("dev", "data/dev")
    ]
    if any(name.startswith("data/dev/") for name in dev_files):
        return LAYOUTS["mmlu"]
    if dev_files:
        return LAYOUTS["ceval"] if all(name.endswith("_dev.csv") for name in dev_files) else LAYOUTS["cmmlu"]
    raise DataError(
        f"{files.location}: no few-shot CSVs in dev/ (cmmlu, ceval) or data/dev/ (mmlu). "
        "Fix: use LLaMA-Factory's data for the task, unzipped in place or as the zip."
    )


def read_subject(files: TaskFiles, layout: LfLayout, split: str, subject: str) -> list[ChoiceExample]:
    """One split of one subject, every row checked; errors name the file and row."""
    name = layout.files[split].format(subject=subject)
    text = files.read_text(name)
    where = files.where(name)
    if text is None:
        raise DataError(
            f"{where} not found: subject {subject!r} of {MAPPING_FILE} has no {split} file in the {layout.name} "
            f"layout. Fix: add the file, or remove the subject from {MAPPING_FILE}."
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = (
        ["question", *CHOICES, "answer"] if layout.header is None else _header_columns(next(reader, []), layout, where)
    )
    examples = []
    for cells in reader:
        row_where = f"{where} row {reader.line_num}"
        if len(cells) != len(columns):
            raise DataError(
                f"{row_where}: {len(cells)} cells, expected {len(columns)}. Fix: quote cells that contain commas."
            )
        examples.append(example_from_row(dict(zip(columns, cells, strict=True)), CHOICES, row_where))
    if not examples:
        raise DataError(f"{where} has no questions. Fix: use the task's full data file.")
    return examples


def _header_columns(header: list[str], layout: LfLayout, where: str) -> list[str]:
    """The header renamed to lf-ray's `question` / `answer`; other columns (id, explanation) ride along."""
    question, answer = layout.header
    if layout.name == "ceval" and answer not in header and all(key in header for key in (question, *CHOICES)):
        raise DataError(
            f"{where}: no {answer!r} column; C-Eval's test answers are not public. Fix: score the validation "
            "split (`task: ceval_validation`)."
        )
    missing = [key for key in (question, *CHOICES, answer) if key not in header]
    if missing:
        raise DataError(
            f"{where}: header is {header}, lacking {missing}. Fix: use the {layout.name} header "
            f"({', '.join((question, *CHOICES, answer))})."
        )
    return [{question: "question", answer: "answer"}.get(key, key) for key in header]
