"""When a test may interrupt a run: once Ray Train has registered a checkpoint, a re-run resumes from it."""

from __future__ import annotations

from lf_ray import storage


def checkpoint_registered(storage_path: str) -> bool:
    """Ray Train's controller writes `checkpoint_manager_snapshot.json` under the run's storage once it has collected
    a worker's checkpoint; what that snapshot lists is what a restart or a re-run resumes from."""
    return storage.is_dir(storage_path) and any(
        f.path.endswith("checkpoint_manager_snapshot.json") for f in storage.list_files(storage_path)
    )
