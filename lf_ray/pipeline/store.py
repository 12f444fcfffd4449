"""The run store: one `run.json` per pipeline run, beside the step artifacts it used. No Ray.

    <storage_path>/<pipeline>/runs/<run id>/run.json     steps, statuses, timings, metrics, MLflow ids
    <storage_path>/<pipeline>/steps/<step>/<fp12>/       the artifacts (shared by every run that reuses them)

`run.json` is rewritten atomically after every step, so a killed driver leaves a record that says how far it
got; `runs list` shows such a run as `interrupted` once its driver process is gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lf_ray.artifacts import write_json
from lf_ray.errors import ConfigError

RUNS_DIR = "runs"
RUN_RECORD = "run.json"


def now() -> str:
    """Local time with its UTC offset, to the millisecond (ISO 8601: sorts and parses back)."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass
class RunRecord:
    """A pipeline run as the store keeps it; `data` is what `run.json` holds."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def create(cls, root: Path, pipeline: str, source: str | None, steps: dict[str, dict[str, Any]]) -> RunRecord:
        run_id = new_run_id()
        data = {
            "run_id": run_id,
            "pipeline": pipeline,
            "source": source,
            "root": str(root),
            "status": "running",
            "started_at": now(),
            "finished_at": None,
            "driver": {"host": socket.gethostname(), "pid": os.getpid()},
            "mlflow": None,
            "steps": steps,
        }
        record = cls(root / RUNS_DIR / run_id / RUN_RECORD, data)
        record.save()
        return record

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.data)

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


def find_runs(storage: Path) -> list[RunRecord]:
    """Every run under a storage path (all pipelines) or one pipeline's folder, newest first."""
    storage = Path(storage).expanduser()
    paths = [*storage.glob(f"{RUNS_DIR}/*/{RUN_RECORD}"), *storage.glob(f"*/{RUNS_DIR}/*/{RUN_RECORD}")]
    records = []
    for path in paths:
        try:
            records.append(RunRecord(path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, json.JSONDecodeError):
            continue  # a record being replaced right now; the next listing shows it
    return sorted(records, key=lambda record: record.data.get("started_at") or "", reverse=True)


def find_run(storage: Path, run_id: str) -> RunRecord:
    runs = find_runs(storage)
    matches = [record for record in runs if record.run_id == run_id or record.run_id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(record.run_id for record in runs[:5]) or "none"
        raise ConfigError(
            f"no run `{run_id}` under {storage} (latest: {known}). Fix: pick an id from `lf-ray runs list`, or "
            "pass the pipeline YAML or --storage-path where its runs are"
        )
    raise ConfigError(f"`{run_id}` matches {len(matches)} runs ({', '.join(r.run_id for r in matches)}); give more")


def duration(record: RunRecord) -> float | None:
    started, finished = record.data.get("started_at"), record.data.get("finished_at")
    if not started or not finished:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
