"""What a board form may name (the allowed roots: traversal, symlinks, absolute paths, storage URIs, any config key
of the extra arguments) and who may open a board that listens beyond loopback (a real login over real HTTP)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest
import requests

from lf_ray.cli import main
from lf_ray.errors import ConfigError
from lf_ray.webui.jobs import session_pids
from lf_ray.webui.roots import ENV_BOARD_AUTH, ENV_BOARD_PATHS, AllowedRoots, board_auth
from lf_ray.webui.runner import Runner
from tests.e2e.conftest import BIN, free_port, job_env


@pytest.fixture
def roots(tmp_path, monkeypatch) -> AllowedRoots:
    """Started in `tmp_path/start`, with `tmp_path/data` and one bucket prefix allowed."""
    for folder in ("start", "data", "outside"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "start")
    monkeypatch.delenv(ENV_BOARD_PATHS, raising=False)
    return AllowedRoots.of([tmp_path / "data", "s3://team-bucket/runs/"])


def test_paths_inside_the_roots_are_allowed_and_relative_names_stay_in_the_start_folder(roots, tmp_path):
    allowed = [
        "saves/tiny-llama/lora/train_1",  # a new folder under the start folder
        str(tmp_path / "data" / "alpaca.json"),
        str(tmp_path / "data"),
        "HuggingFaceTB/SmolLM2-135M-Instruct",  # a hub id resolves inside the start folder
        "builtin:tiny-llama",
        "s3://team-bucket/runs",
        "s3://team-bucket/runs/sft/checkpoint-5",
    ]
    assert [value for value in allowed if not roots.allows(value)] == []


def test_traversal_absolute_paths_symlinks_and_other_storage_are_refused(roots, tmp_path):
    (tmp_path / "start" / "escape").symlink_to(tmp_path / "outside")  # a symlink inside that leads out
    refused = [
        "../outside",
        "saves/../../outside/x",
        str(tmp_path / "outside"),
        str(tmp_path / "data-other"),  # a sibling that shares the root's name as a prefix
        "/etc/passwd",
        "escape",
        "escape/new_run",  # a folder that does not exist yet, under the symlink
        "s3://team-bucket/runs-other",
        "s3://other-bucket/runs",
        "gs://team-bucket/runs",
    ]
    assert [value for value in refused if roots.allows(value)] == []
    with pytest.raises(ConfigError, match=r"`adapter_name_or_path: ../outside` is outside the folders this board"):
        roots.check("adapter_name_or_path", "saves/a, ../outside")
    assert str(tmp_path / "data") in roots.described() and "--allow-path" in _message(roots, "/etc")


def _message(roots: AllowedRoots, value: str) -> str:
    with pytest.raises(ConfigError) as raised:
        roots.check("dataset_dir", value)
    return str(raised.value)


def test_roots_come_from_the_start_folder_the_options_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = tmp_path.parent / f"{tmp_path.name}-models"
    roots = AllowedRoots.of([], environ={ENV_BOARD_PATHS: f"{extra}, s3://models"})
    assert roots.folders == (tmp_path.resolve(), extra.resolve()) and roots.uris == ("s3://models",)
    assert roots.allows(str(extra / "llama")) and roots.allows("s3://models/llama")


def test_the_runner_refuses_a_form_or_extra_argument_that_leads_outside_and_writes_nothing(tmp_path, train_state):
    runner = Runner(jobs_dir=tmp_path / "jobs", roots=AllowedRoots.of([tmp_path]))
    assert runner.preview("train", train_state).startswith("lf-ray train ")
    outside = f"{tmp_path}-elsewhere/run"
    cases = {
        "train.output_dir": outside,
        "top.model_name_or_path": "/opt/models/llama",
        "train.extra_args": f'{{"deepspeed": "{tmp_path}/../ds.json"}}',
        "train.ray_storage_path": "s3://any-bucket/runs",
    }
    for field, value in cases.items():
        (update,) = runner.start("train", {**train_state, field: value})
        assert update.done and update.text.startswith("The config is refused: `"), (field, update.text)
        assert "is outside the folders this board may use" in update.text
    assert not os.path.exists(outside) and not (tmp_path / "jobs").exists() and runner.job is None
    assert not os.path.exists(train_state["train.output_dir"])


def test_a_board_beyond_loopback_needs_credentials(monkeypatch, capsys):
    for name in (ENV_BOARD_AUTH, "GRADIO_SERVER_NAME", "GRADIO_SHARE"):
        monkeypatch.delenv(name, raising=False)
    assert board_auth(None, None, None) is None and board_auth("::1", False, None) is None
    for host, share in (("0.0.0.0", None), ("board.example.org", None), ("127.0.0.1", True)):
        with pytest.raises(ConfigError, match="give credentials with LF_RAY_BOARD_AUTH=USER:PASSWORD"):
            board_auth(host, share, None)
    with pytest.raises(ConfigError, match="must read USER:PASSWORD"):
        board_auth("0.0.0.0", None, "admin")
    check = board_auth("0.0.0.0", None, None, environ={ENV_BOARD_AUTH: "admin:s3cret:x"})
    assert check("admin", "s3cret:x") and not check("admin", "s3cret") and not check("root", "s3cret:x")
    started = time.monotonic()
    assert main(["webui", "--host", "0.0.0.0"]) == 2  # refused before Gradio loads or a port opens
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "--host 0.0.0.0 would let anyone who reaches it start jobs and read files as you" in err
    assert "Traceback" not in err


def test_a_shared_board_asks_for_its_login_over_http(tmp_path):
    """`lf-ray webchat --host 0.0.0.0` with LF_RAY_BOARD_AUTH: the app's config answers 401 until the login, a wrong
    password is refused, the right one opens it; the password appears nowhere in the server's log. Ctrl-C stops it
    within seconds, leaving no process behind."""
    port = free_port()
    env = job_env(**{ENV_BOARD_AUTH: "admin:correct horse"})
    command = [str(BIN / "lf-ray"), "webchat", "--host", "0.0.0.0", "--port", str(port)]
    with open(tmp_path / "server.log", "w") as log, _process(command, tmp_path, env, log) as server:
        url, session = f"http://127.0.0.1:{port}", requests.Session()
        deadline = time.monotonic() + 90
        while True:
            try:
                page = session.get(url, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
                time.sleep(0.5)
        assert page.status_code == 200  # the single-page app, which shows the login form first
        assert session.get(f"{url}/config", timeout=5).status_code == 401
        wrong = session.post(f"{url}/login", data={"username": "admin", "password": "wrong"}, timeout=5)
        assert wrong.status_code == 400 and session.get(f"{url}/config", timeout=5).status_code == 401
        right = session.post(f"{url}/login", data={"username": "admin", "password": "correct horse"}, timeout=5)
        assert right.status_code == 200 and right.json() == {"success": True}
        config = session.get(f"{url}/config", timeout=5)
        assert config.status_code == 200 and "lf-ray board" in config.json()["title"]
        stopping = time.monotonic()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0 and time.monotonic() - stopping < 10
        assert session_pids(server.pid) == []
    assert "correct horse" not in (tmp_path / "server.log").read_text()


@contextlib.contextmanager
def _process(command, cwd, env, log):
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
