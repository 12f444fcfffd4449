"""Run a script that starts its own simulated multi-node Ray cluster (`ray.cluster_utils.Cluster`) in a process of
its own, since the test session already holds a Ray instance; the script prints `RESULT <json>` last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_cluster_script(script: str, workdir: Path, timeout: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(workdir)], capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))
