"""`export_hub_model_id`: the committed export is pushed with huggingface_hub, here to a local HTTP server that
answers the Hub's create-repo, preupload and commit endpoints; refusals without a token or offline."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from lf_ray.cli import main
from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError, ModelError
from lf_ray.export.merge import run_export

REPO = "lf-ray/tiny-export"


class LocalHub(BaseHTTPRequestHandler):
    """The three Hub endpoints `create_repo` + `upload_folder` use, storing committed files in `files`."""

    files: ClassVar[dict[str, bytes]] = {}
    paths: ClassVar[list[str]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.paths.append(self.path)
        if self.path == "/api/repos/create":
            return self._json({"url": f"{self.endpoint}/{REPO}", "name": REPO})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._json(
                {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if "/commit/" in self.path:
            for line in body.decode().splitlines():
                entry = json.loads(line)
                if entry["key"] == "file":
                    self.files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
            return self._json({"commitUrl": f"{self.endpoint}/{REPO}/commit/1", "commitOid": "1" * 40})
        self.send_error(404)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def _json(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub(monkeypatch):
    from huggingface_hub import constants

    server = ThreadingHTTPServer(("127.0.0.1", 0), LocalHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    LocalHub.files, LocalHub.paths = {}, []
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("HF_TOKEN", "hf_local_test_token")
    yield LocalHub
    server.shutdown()


def export_cfg(out: Path):
    return prepare_config(
        None, ["model_name_or_path=builtin:tiny-llama", f"export_dir={out}", f"export_hub_model_id={REPO}"]
    )


def test_the_export_is_pushed_file_for_file(hub, tmp_path):
    result = run_export(export_cfg(tmp_path / "export"))

    assert hub.paths[0] == "/api/repos/create"
    assert sorted(hub.files) == sorted(result.files)
    assert hub.files["model.safetensors"] == (tmp_path / "export" / "model.safetensors").read_bytes()


def test_a_failed_push_keeps_the_committed_export_and_says_how_to_upload(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HF_TOKEN", "hf_local_test_token")
    with pytest.raises(ModelError, match=rf"the export is committed at .*export, but pushing it to .*{REPO} failed"):
        run_export(export_cfg(tmp_path / "export"))
    assert (tmp_path / "export" / "model.safetensors").is_file()


def test_without_a_token_the_export_is_refused_before_loading(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # no stored login either
    config = tmp_path / "export.yaml"
    out = tmp_path / "export"
    config.write_text(f"model_name_or_path: builtin:tiny-llama\nexport_dir: {out}\nexport_hub_model_id: {REPO}\n")

    assert main(["export", str(config)]) == 2
    assert "pushes to the Hugging Face Hub, which needs a write token. Fix: set HF_TOKEN" in capsys.readouterr().err
    assert not out.exists()


def test_offline_the_push_is_refused(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="but HF_HUB_OFFLINE is set"):
        run_export(export_cfg(tmp_path / "export"))
