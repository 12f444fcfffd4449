"""Read a registered dataset's rows from disk (json, jsonl, csv, parquet, arrow, txt) or a hub.

Errors name the file and, for JSON, the line; reading never half-succeeds silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lf_ray import storage
from lf_ray.data.registry import DatasetAttr, dataset_location
from lf_ray.errors import DataError

FILE_TYPES = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}

Row = dict[str, Any]


def read_rows(attr: DatasetAttr, dataset_dir: str) -> list[Row]:
    if attr.load_from != "file":
        return _read_hub(attr)
    location = _existing_location(attr, dataset_dir)
    path = storage.localize(location)  # an object store's files: downloaded once per node
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    rows: list[Row] = []
    for file in files:
        rows += read_file(file, attr.name)
    return rows


def source_files(attr: DatasetAttr, dataset_dir: str) -> list[tuple[str, int]]:
    """A file dataset's files (paths or URIs, in name order: the order `read_rows` reads them) and their sizes;
    nothing is downloaded."""
    location = _existing_location(attr, dataset_dir)
    if storage.is_file(location):
        return [(location, storage.list_files(location)[0].size)]
    files = storage.list_files(location)
    return [(storage.join(location, f.path), f.size) for f in files if "/" not in f.path and not f.path.startswith(".")]


def _existing_location(attr: DatasetAttr, dataset_dir: str) -> str:
    location = dataset_location(attr, dataset_dir)
    if not storage.exists(location):
        raise DataError(
            f"dataset `{attr.name}`: file {location} does not exist; fix `file_name` in dataset_info.json "
            f"or `dataset_dir` (now `{dataset_dir}`)"
        )
    return location


def read_file(path: Path, dataset: str = "") -> list[Row]:
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"dataset `{dataset}`: cannot read {path}: unknown file type `{path.suffix}`; "
            f"use one of {', '.join(FILE_TYPES)}"
        )
    if kind == "json":
        return _read_json(path)
    if kind == "text":
        return [{"text": line} for line in _utf8_text(path).splitlines() if line.strip()]
    return _read_arrow_like(path, kind)


def _utf8_text(path: Path) -> str:
    """The file as text; a byte-order mark, as some editors write, is not data."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`"
        ) from None


def _read_json(path: Path) -> list[Row]:
    text = _utf8_text(path)
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}; fix that line"
            ) from None
    else:  # JSON lines (HF's json reader takes both shapes from a .json file too)
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(
                    f"{path}: malformed JSON on line {number} (column {err.colno}: {err.msg}): {line[:120]!r}; "
                    "each line of a JSON-lines file must be one JSON object"
                ) from None
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise DataError(
            f"{path}: row {bad} is {type(rows[bad]).__name__}, not an object; every row must be a JSON object"
        )
    return rows


def _read_arrow_like(path: Path, kind: str) -> list[Row]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        if kind == "csv":
            table = pa_csv.read_csv(path)
        elif kind == "parquet":
            table = pq.read_table(path)
        else:
            with pa.memory_map(str(path)) as source:
                try:
                    table = pa.ipc.open_stream(source).read_all()
                except pa.ArrowInvalid:
                    table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path}: cannot read it as {kind}: {err}") from None
    return table.to_pylist()


def _read_hub(attr: DatasetAttr) -> list[Row]:
    """Hub datasets go through `datasets.load_dataset`; on a machine with no hub access it says so."""
    import datasets

    try:
        dataset = datasets.load_dataset(attr.dataset_name, name=attr.subset, data_dir=attr.folder, split=attr.split)
    except Exception as err:  # the hub client raises many types; the message is what matters
        raise DataError(
            f"dataset `{attr.name}`: cannot load `{attr.dataset_name}` from the {attr.load_from} hub ({err}); "
            "download it to a local folder and register it with `file_name` in dataset_info.json"
        ) from None
    return dataset.to_list()
