"""The results table: the best completed trial, best-first order, CSV and JSON on disk."""

from __future__ import annotations

import csv
import json

import pytest

from lf_ray.errors import TrainError
from lf_ray.tune.results import TrialRow, format_table, select_best, sort_rows, write_results


def _rows() -> list[TrialRow]:
    return [
        TrialRow(
            "t0", "completed", {"learning_rate": 1e-3, "lora_rank": 8}, 2.5, {"eval_loss": 2.5, "loss": 2.4}, 4, 8
        ),
        TrialRow("t1", "stopped", {"learning_rate": 1e-2, "lora_rank": 4}, 1.9, {"eval_loss": 1.9}, 1, 2),
        TrialRow("t2", "completed", {"learning_rate": 5e-3, "lora_rank": 16}, 2.1, {"eval_loss": 2.1}, 4, 8),
        TrialRow("t3", "failed", {"learning_rate": 1e-4, "lora_rank": 4}, None, {}, 0, None, error="ConfigError: x"),
    ]


def test_the_best_is_the_best_completed_trial_never_an_early_stopped_one():
    assert select_best(_rows(), "eval_loss", "min").trial_id == "t2"  # t1 is lower but was stopped early
    assert select_best(_rows(), "eval_loss", "max").trial_id == "t0"


def test_no_completed_trial_is_a_clear_error():
    with pytest.raises(TrainError, match=r"no trial of the sweep completed.*t3: failed \(ConfigError: x\)"):
        select_best([row for row in _rows() if row.status != "completed"], "eval_loss", "min")


def test_rows_sort_best_first_with_missing_metrics_last():
    assert [row.trial_id for row in sort_rows(_rows(), "min")] == ["t1", "t2", "t0", "t3"]
    assert [row.trial_id for row in sort_rows(_rows(), "max")] == ["t0", "t2", "t1", "t3"]


def test_table_text_csv_and_json(tmp_path):
    rows = sort_rows(_rows(), "min")
    text = format_table(rows, "eval_loss", best_id="t2")
    header, *lines = text.splitlines()
    assert header.split()[:5] == ["trial_id", "status", "learning_rate", "lora_rank", "eval_loss"]
    assert [line for line in lines if line.startswith("* ")] == [next(line for line in lines if "t2" in line)]
    csv_path, json_path = write_results(rows, "eval_loss", "t2", tmp_path)
    records = list(csv.DictReader(csv_path.open()))
    assert [r["trial_id"] for r in records] == ["t1", "t2", "t0", "t3"]
    assert records[1]["lora_rank"] == "16" and float(records[1]["eval_loss"]) == 2.1
    assert records[3]["error"] == "ConfigError: x" and records[3]["eval_loss"] == ""
    payload = json.loads(json_path.read_text())
    assert payload["best_trial_id"] == "t2" and payload["trials"][0]["metrics"] == {"eval_loss": 1.9}
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically
