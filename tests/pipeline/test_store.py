"""The run store and `lf-ray runs`: records, the `interrupted` state of a dead driver, listing and showing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lf_ray.cli import main
from lf_ray.errors import ConfigError
from lf_ray.pipeline.store import RunRecord, duration, find_run, find_runs


def _record(root, status="complete"):
    steps = {"data": {"uses": "preprocess", "needs": [], "status": "pending", "artifact_dir": str(root / "a")}}
    record = RunRecord.create(root, "tiny", "tiny.yaml", steps)
    record.update_step("data", status="complete", duration_s=1.5, metrics={"rows_in": 3})
    if status != "running":
        record.finish(status)
    return record


def test_records_are_found_newest_first_by_id_or_prefix(tmp_path):
    first = _record(tmp_path / "tiny")
    second = _record(tmp_path / "tiny", status="failed")
    runs = find_runs(tmp_path)
    assert [r.run_id for r in runs] == [second.run_id, first.run_id]
    assert find_run(tmp_path, first.run_id[:-2]).data["status"] == "complete"
    assert find_runs(tmp_path / "tiny")[0].run_id == second.run_id  # a pipeline's own folder works too
    assert duration(first) is not None and duration(first) >= 0
    with pytest.raises(ConfigError, match=r"no run `nope` under .* pick an id from `lf-ray runs list`"):
        find_run(tmp_path, "nope")


def test_a_running_record_whose_driver_died_reads_interrupted(tmp_path):
    live = _record(tmp_path / "tiny", status="running")
    assert live.effective_status == "running"  # this process is its driver
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live.data["driver"]["pid"] = int(dead.stdout)
    assert live.effective_status == "interrupted"


def test_runs_list_and_show_print_the_store(tmp_path, capsys):
    record = _record(tmp_path / "tiny")
    assert main(["runs", "list", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert record.run_id in listing and "1 complete" in listing and "tiny" in listing
    assert main(["runs", "show", record.run_id, str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert "status complete" in shown and "data           preprocess complete" in shown and "1.5 s" in shown
    assert main(["runs", "show", "missing", str(tmp_path)]) == 2
    assert "no run `missing`" in capsys.readouterr().err
