"""`lf-ray serve` as users run it, stopped as a container runtime stops it: SIGTERM to the command alone. It removes
its Serve application and stops the local Ray it started within seconds, leaving no process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from lf_ray.webui.jobs import session_pids
from tests.e2e.conftest import BIN, free_port, job_env

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("tiny_qwen_path")
def test_sigterm_stops_lf_ray_serve_its_application_and_its_ray(tmp_path):
    port = free_port()
    config = REPO / "examples" / "inference" / "tiny_qwen.yaml"
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(BIN / "lf-ray"), "serve", str(config), f"api_port={port}", "max_new_tokens=4"],
            cwd=tmp_path,
            env=job_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url, deadline = f"http://127.0.0.1:{port}/v1", time.monotonic() + 240
        while True:
            try:
                models = requests.get(f"{url}/models", timeout=2)
                if models.status_code == 200 and "(Ctrl-C to stop)" in log_path.read_text():
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still deploying
                pass
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(1)
        assert [model["id"] for model in models.json()["data"]] == ["tiny-qwen"]
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 143, log_path.read_text()[-3000:]
        stopped_in = time.monotonic() - stopping
        while session_pids(server.pid) and time.monotonic() - stopping < 30:
            time.sleep(0.5)
        assert session_pids(server.pid) == []  # the Serve controller, proxy and replica, the raylet and GCS too
        assert stopped_in < 15, stopped_in
        log = log_path.read_text()
        assert log.index("lf-ray serve: removing the application") < log.index("lf-ray serve: stopped by SIGTERM")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/models", timeout=2)
    finally:
        for pid in session_pids(server.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
