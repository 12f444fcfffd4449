"""The sweep's results table: one row per trial, the best trial, and the table as text, CSV and JSON.

Pure: rows are built by the runner from Ray Tune's results and each trial's output folder.
"""

from __future__ import annotations

import csv
import io
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lf_ray.artifacts import write_json
from lf_ray.errors import TrainError

COMPLETED, STOPPED, FAILED = "completed", "stopped", "failed"
"""A trial trained to the end, was stopped early by the scheduler, or raised."""

_SHOWN_METRICS = ("loss", "eval_loss", "train_loss", "eval_accuracy")


@dataclass
class TrialRow:
    """One trial: its sampled values, how it ended, its metric (final when it completed, else last reported)."""

    trial_id: str
    status: str
    params: dict[str, Any]
    metric: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    iterations: int = 0
    step: int | None = None
    time_s: float = 0.0
    output_dir: str = ""
    error: str | None = None


def select_best(rows: Sequence[TrialRow], metric: str, mode: str) -> TrialRow:
    """The completed trial with the best metric. Early-stopped trials are never chosen: their folders hold
    no final adapter or model."""
    ranked = [row for row in rows if row.status == COMPLETED and _is_number(row.metric)]
    if not ranked:
        reasons = "; ".join(f"{row.trial_id}: {row.status}{f' ({row.error})' if row.error else ''}" for row in rows)
        raise TrainError(
            f"no trial of the sweep completed with a `{metric}` value ({reasons or 'no trials ran'}); "
            "see the errors above and the Ray logs, or check that training reports the metric "
            "(eval_* metrics need eval_strategy and val_size)"
        )
    return (min if mode == "min" else max)(ranked, key=lambda row: row.metric)


def sort_rows(rows: Sequence[TrialRow], mode: str) -> list[TrialRow]:
    """Best first; trials without a metric last."""
    sign = 1 if mode == "min" else -1
    return sorted(rows, key=lambda row: (not _is_number(row.metric), sign * (row.metric or 0.0), row.trial_id))


def table_records(rows: Sequence[TrialRow], metric: str) -> list[dict[str, Any]]:
    """Flat records (params and metrics as columns) for CSV and for printing."""
    records = []
    for row in rows:
        record: dict[str, Any] = {"trial_id": row.trial_id, "status": row.status}
        record.update(row.params)
        record[metric] = row.metric
        for name in _SHOWN_METRICS:
            if name != metric and name in row.metrics:
                record[name] = row.metrics[name]
        record.update(iterations=row.iterations, step=row.step, time_s=round(row.time_s, 1))
        record.update(output_dir=row.output_dir, error=row.error or "")
        records.append(record)
    return records


def format_table(rows: Sequence[TrialRow], metric: str, best_id: str | None = None) -> str:
    """A fixed-width text table; the best trial is marked with `*`."""
    records = table_records(rows, metric)
    columns = [c for c in _columns(records) if c not in ("output_dir", "error")]
    cells = [[_cell(record.get(column)) for column in columns] for record in records]
    widths = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
    lines = ["  " + "  ".join(column.ljust(widths[i]) for i, column in enumerate(columns))]
    for record, row in zip(records, cells, strict=True):
        mark = "* " if record["trial_id"] == best_id else "  "
        lines.append(mark + "  ".join(value.ljust(widths[i]) for i, value in enumerate(row)))
    return "\n".join(lines)


def write_results(rows: Sequence[TrialRow], metric: str, best_id: str | None, directory: Path) -> tuple[Path, Path]:
    """`tune_results.csv` (the table) and `tune_results.json` (rows with every metric), written atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    records = table_records(rows, metric)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(records), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    csv_path, json_path = directory / "tune_results.csv", directory / "tune_results.json"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, csv_path)
    write_json(json_path, {"metric": metric, "best_trial_id": best_id, "trials": [asdict(row) for row in rows]})
    return csv_path, json_path


def _columns(records: Sequence[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for record in records:
        columns.extend(key for key in record if key not in columns)
    return columns


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
