"""A `ray start --head` cluster with a dashboard, shared by the tests that submit Ray jobs to it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def job_env(**extra: str) -> dict[str, str]:
    """This environment minus RAY_ADDRESS (each command picks its cluster), with this venv's `bin` first."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_ADDRESS")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


@dataclass(frozen=True)
class HeadCluster:
    dashboard: str
    """The Job Submission API's address, http://127.0.0.1:PORT."""
    env: dict[str, str]
    """The environment the cluster's CLI and clients must use (auth mode included)."""


@pytest.fixture(scope="module")
def ray_head_cluster():
    """Started per module that uses it: an idle head (dashboard, GCS, raylet) would take CPU from later tests."""
    env = job_env(RAY_AUTH_MODE="disabled")  # ../shared/FIELD-NOTES.md: ray start and the job clients must agree
    gcs, dashboard, agent, client = (free_port() for _ in range(4))
    ray_dir = tempfile.mkdtemp(prefix="lfr-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    head = subprocess.Popen(
        [
            str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
            "--include-dashboard=true", f"--dashboard-port={dashboard}", f"--temp-dir={ray_dir}",
            # the test session's own Ray already holds the default ports of these two
            f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        cluster = HeadCluster(f"http://127.0.0.1:{dashboard}", env)
        _wait_until_it_takes_jobs(cluster)
        yield cluster
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=10)  # `ray stop`-like shutdown can take half a minute; nothing here needs it clean
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(ray_dir, ignore_errors=True)


def _wait_until_it_takes_jobs(cluster: HeadCluster, timeout_s: float = 120.0) -> None:
    """The dashboard and its node agent come up a while after `ray start`: submit a no-op job until one runs."""
    submit = [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard, "--", "python", "-c", "pass"]
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        last = subprocess.run(submit, env=cluster.env, capture_output=True, text=True, timeout=120)
        if last.returncode == 0:
            return
        time.sleep(2)
    raise RuntimeError(f"the Ray head at {cluster.dashboard} never took a job: {last.stderr[-2000:] if last else ''}")
