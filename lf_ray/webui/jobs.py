"""What the board launches: `lf-ray <command> <config>` as a Ray job on a cluster (Job Submission API), or as
a local process (never through a shell). Both answer the same questions: state, log tail, abort."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

JobState = Literal["running", "succeeded", "failed", "stopped"]

RUNNING_LOG = "running_log.txt"
"""The local process's stdout and stderr, in its job folder (LLaMA Board's file name)."""

ABORT_GRACE_S = 10.0


class BoardJob(Protocol):
    name: str

    def state(self) -> JobState: ...

    def log_text(self) -> str: ...

    def exit_detail(self) -> str: ...

    def abort(self) -> None: ...


@dataclass
class LocalJob:
    """`python -m lf_ray <command> <config>` in a session of its own, so abort can stop everything it started
    (the local Ray it starts included)."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, command: str, config_path: Path, log_dir: Path) -> LocalJob:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / RUNNING_LOG
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "lf_ray", command, str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        return cls(name=f"pid {process.pid}", process=process, log_path=log_path)

    def state(self) -> JobState:
        code = self.process.poll()
        if code is None:
            return "running"
        if code == 0:
            return "succeeded"
        return "stopped" if code < 0 else "failed"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def exit_detail(self) -> str:
        code = self.process.poll()
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    def abort(self) -> None:
        """SIGTERM to the process group, then SIGKILL to whatever of its session is left after a grace period:
        Ray's workers run in groups of their own inside the driver's session."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=ABORT_GRACE_S)
        for pid in self.session_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def session_pids(self) -> list[int]:
        """The driver and all it started that still live."""
        return session_pids(self.process.pid)


def session_pids(session: int) -> list[int]:
    """The live (not zombie) processes of a session (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) == session:
            pids.append(int(entry))
    return pids


@dataclass
class RayJob:
    """The command submitted through Ray's Job Submission API; its config travels as the job's working_dir."""

    name: str
    client: JobSubmissionClient

    @classmethod
    def submit(cls, address: str, command: str, config_path: Path, staging_dir: Path) -> RayJob:
        from ray.job_submission import JobSubmissionClient

        submission_id = f"lf-ray-{command}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        working_dir = staging_dir / submission_id
        working_dir.mkdir(parents=True)
        shutil.copy(config_path, working_dir / config_path.name)
        client = JobSubmissionClient(address)
        client.submit_job(
            entrypoint=f"lf-ray {command} {config_path.name}",
            submission_id=submission_id,
            runtime_env={"working_dir": str(working_dir), "env_vars": {"PYTHONUNBUFFERED": "1"}},
            metadata={"submitted_by": "lf-ray webui"},
        )
        return cls(name=submission_id, client=client)

    def state(self) -> JobState:
        status = str(self.client.get_job_status(self.name).value)
        return {"PENDING": "running", "RUNNING": "running", "SUCCEEDED": "succeeded", "STOPPED": "stopped"}.get(
            status, "failed"
        )

    def log_text(self) -> str:
        return self.client.get_job_logs(self.name)

    def exit_detail(self) -> str:
        info = self.client.get_job_info(self.name)
        return f"Ray job {self.name} {info.status.value}" + (f": {info.message}" if info.message else "")

    def abort(self) -> None:
        self.client.stop_job(self.name)
        deadline = time.monotonic() + 3 * ABORT_GRACE_S
        while self.state() == "running" and time.monotonic() < deadline:
            time.sleep(0.5)


def launch(command: str, config_path: Path, log_dir: Path, ray_address: str | None, staging_dir: Path) -> BoardJob:
    """A Ray job when a cluster address is set, else a local process."""
    if ray_address:
        return RayJob.submit(ray_address, command, config_path, staging_dir)
    return LocalJob.start(command, config_path, log_dir)
