"""The run store: one `run.json` per pipeline run, beside the step artifacts it used. No Ray.

    <storage_path>/<pipeline>/runs/<run id>/run.json     steps, statuses, timings, metrics, MLflow ids
    <storage_path>/<pipeline>/steps/<step>/<fp12>/       the artifacts (shared by every run that reuses them)

`<storage_path>` is a local path or a URI. `run.json` is rewritten atomically (one PUT on an object store) after
every step, so a killed driver leaves a record that says how far it got; `runs list` shows such a run as
`interrupted` once its driver process is gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lf_ray import storage
from lf_ray.artifacts import json_text, now
from lf_ray.errors import ConfigError

RUNS_DIR = "runs"
RUN_RECORD = "run.json"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass
class RunRecord:
    """A pipeline run as the store keeps it; `data` is what `run.json` holds."""

    path: str  # a local path or a URI
    data: dict[str, Any]

    @classmethod
    def create(cls, root: str, pipeline: str, source: str | None, steps: dict[str, dict[str, Any]]) -> RunRecord:
        run_id = new_run_id()
        data = {
            "run_id": run_id,
            "pipeline": pipeline,
            "source": source,
            "root": root,
            "status": "running",
            "started_at": now(),
            "finished_at": None,
            "driver": {"host": socket.gethostname(), "pid": os.getpid()},
            "mlflow": None,
            "steps": steps,
        }
        record = cls(storage.join(root, RUNS_DIR, run_id, RUN_RECORD), data)
        record.save()
        return record

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def folder(self) -> str:
        """`<root>/runs/<run id>`: the record, and the logs of steps that failed."""
        return self.path.rsplit("/", 1)[0]

    def save(self) -> None:
        storage.write_text(self.path, json_text(self.data))

    def update_step(self, step_id: str, **fields: Any) -> None:
        self.data["steps"][step_id].update(fields)
        self.save()

    def finish(self, status: str) -> None:
        self.data.update(status=status, finished_at=now())
        self.save()

    @property
    def effective_status(self) -> str:
        """`running` only while the driver lives; a record whose driver died says `interrupted`."""
        status = self.data.get("status")
        driver = self.data.get("driver") or {}
        if status == "running" and driver.get("host") == socket.gethostname() and not _alive(driver.get("pid")):
            return "interrupted"
        return status


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_runs(where: str) -> list[RunRecord]:
    """Every run under a storage path (all pipelines) or one pipeline's folder, newest first."""
    where = storage.resolve(where)
    paths = [*_records_under(where), *(p for folder in storage.list_dirs(where) for p in _records_under(folder))]
    records = []
    for path in paths:
        try:
            records.append(RunRecord(path, json.loads(storage.read_text(path))))
        except (OSError, ValueError, storage.StorageError):
            continue  # a record being replaced right now; the next listing shows it
    return sorted(records, key=lambda record: record.data.get("started_at") or "", reverse=True)


def _records_under(pipeline_root: str) -> list[str]:
    runs = storage.join(pipeline_root, RUNS_DIR)
    candidates = (storage.join(run, RUN_RECORD) for run in storage.list_dirs(runs))
    return [path for path in candidates if storage.is_file(path)]


def find_run(where: str, run_id: str) -> RunRecord:
    runs = find_runs(where)
    matches = [record for record in runs if record.run_id == run_id or record.run_id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(record.run_id for record in runs[:5]) or "none"
        raise ConfigError(
            f"no run `{run_id}` under {where} (latest: {known}). Fix: pick an id from `lf-ray runs list`, or "
            "pass the pipeline YAML or --storage-path where its runs are"
        )
    raise ConfigError(f"`{run_id}` matches {len(matches)} runs ({', '.join(r.run_id for r in matches)}); give more")


def duration(record: RunRecord) -> float | None:
    started, finished = record.data.get("started_at"), record.data.get("finished_at")
    if not started or not finished:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
