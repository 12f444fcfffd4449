"""SwanLab runs (`use_swanlab`) from real training on the tiny model, read back from swanlab's run files.

CPU, no Ray, no network: `swanlab_mode: local` and `offline` write the run under `swanlab_logdir` (local mode also
wants swanlab's dashboard package, and logs an error without it), and the Lark notification goes to a webhook
served here. swanlab 0.10.3 sends none in offline mode: its link builder rejects an offline run's path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import pytest
import swanlab
from swanlab.proto.swanlab.record.v1.record_pb2 import Record
from swanlab.proto.swanlab.run.v1.run_pb2 import RunState
from swanlab.sdk.internal.core_python.store import DataStoreReader
from transformers import AutoModelForSequenceClassification, TrainerState

from lf_ray.model.loader import load_causal_lm
from lf_ray.tracking.swanlab_tracking import SWANLAB_DIR, SwanLabRunCallback
from lf_ray.tracking.trackers import finish_tracker_runs, trainer_report_to
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer
from tests.train.stage_runs import ROWS, lora, stage_config, train

API_KEY = "swanlab-api-key-7f3a9c0e"
LARK_SECRET = "lark-secret-51d2b7"


@pytest.fixture(autouse=True)
def swanlab_home(tmp_path, monkeypatch):
    """swanlab's user folder (credentials, settings) under tmp_path; no run is left open after a test."""
    monkeypatch.setenv("SWANLAB_ROOT", str(tmp_path / "swanlab_home"))
    yield
    finish_tracker_runs()


class LarkHook:
    """A Lark webhook on 127.0.0.1 that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.received = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"code": 0, "msg": "success"}')
                hook.received.set()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/open-apis/bot/v2/hook/test"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def lark_hook():
    hook = LarkHook()
    yield hook
    hook.server.shutdown()


def swanlab_records(log_dir: Path) -> list[Record]:
    """The records of the one run under `log_dir`, read with swanlab's own reader of its run file."""
    (run_file,) = log_dir.glob("run-*/run-*.swanlab")
    reader = DataStoreReader()
    reader.open(str(run_file))
    records = []
    for data in [reader.scan(), *reader]:
        record = Record()
        record.ParseFromString(data)
        records.append(record)
    return records


def lark_sign(timestamp: int, secret: str) -> str:
    """Lark's signature of a webhook message (what the bot checks against its secret)."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), digestmod=hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_a_local_run_holds_the_losses_the_names_and_a_signed_lark_message(
    encoded, tiny_llama_path, tmp_path, lark_hook, capfd
):
    log_dir = tmp_path / "swanlog"
    cfg = stage_config(
        "sft",
        "max_steps=4",
        "use_swanlab=true",
        "swanlab_mode=local",
        f"swanlab_logdir={log_dir}",
        "swanlab_project=lf-ray-tests",
        "swanlab_workspace=my-team",
        "swanlab_run_name=tiny-sft",
        f"swanlab_api_key={API_KEY}",
        f"swanlab_lark_webhook_url={lark_hook.url}",
        f"swanlab_lark_secret={LARK_SECRET}",
    )
    tokenizer, rows = encoded("sft")
    trainer = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path / "output")
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, SwanLabRunCallback)]
    assert callback.settings.api_key == API_KEY  # swanlab logs in with it in cloud mode
    finish_tracker_runs()  # as the worker does once the outputs are saved

    records = swanlab_records(log_dir)
    start = records[0].start
    assert (start.project, start.workspace, start.name) == ("lf-ray-tests", "my-team", "tiny-sft")
    assert list(start.tags) == ["lf-ray", "sft"]
    logged = {r.scalar.step: r.scalar.value.number for r in records if r.scalar.key == "train/loss"}
    losses = {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}
    assert sorted(logged) == [1, 2, 3, 4] and logged == pytest.approx(losses)
    assert records[-1].finish.state == RunState.RUN_STATE_FINISHED

    (config_file,) = log_dir.glob("run-*/files/config.yaml")
    config = config_file.read_text()
    assert "swanlab_project: lf-ray-tests" in config and "learning_rate: 0.005" in config  # lf-ray's config
    assert "swanlab_api_key: '***'" in config and "swanlab_lark_secret: '***'" in config
    assert "swanlab_lark_webhook_url: '***'" in config  # the URL holds the bot's token

    assert lark_hook.received.wait(timeout=30), "no Lark notification arrived"
    (body,) = lark_hook.bodies
    assert body["sign"] == lark_sign(body["timestamp"], LARK_SECRET)
    assert "SwanLab" in body["content"]["text"]

    written = [path for path in tmp_path.rglob("*") if path.is_file() and API_KEY.encode() in path.read_bytes()]
    assert written == []  # the run files, swanlab's debug log, the trainer's outputs
    out, err = capfd.readouterr()
    assert API_KEY not in out + err and LARK_SECRET not in out + err


@pytest.mark.parametrize("stage", ["pt", "sft", "rm", "dpo", "kto"])
def test_every_stages_trainer_gets_the_swanlab_callback_and_report_to_drops_swanlab(
    stage, encoded, tiny_llama_path, tmp_path
):
    cfg = stage_config(stage, "use_swanlab=true", "report_to=[swanlab,tensorboard]")
    assert trainer_report_to(cfg) == ["tensorboard"]  # swanlab's callback, not transformers' integration
    tokenizer, rows = encoded(stage)
    if stage == "rm":
        model = lora(AutoModelForSequenceClassification.from_pretrained(tiny_llama_path, num_labels=1), "SEQ_CLS")
    else:
        model = lora(load_causal_lm(tiny_llama_path))
    args = build_training_arguments(cfg, output_dir=str(tmp_path), overrides={"report_to": ["none"]})
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows[:ROWS])))
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, SwanLabRunCallback)]
    assert callback.init_kwargs == {"project": "llamafactory", "mode": "cloud", "tags": ["lf-ray", stage]}
    assert callback.settings is None and callback.notifications == []


def test_the_run_goes_to_swanlog_in_output_dir_unless_swanlab_logdir_says(tmp_path):
    from lf_ray.tracking.swanlab_tracking import swanlab_callback

    cfg = stage_config("pt", "use_swanlab=true", "swanlab_mode=offline")
    args = build_training_arguments(cfg, output_dir=str(tmp_path / "output"))
    callback = swanlab_callback(cfg)
    callback.setup(args, TrainerState())
    assert swanlab.has_run()
    finish_tracker_runs()
    assert not swanlab.has_run()
    start = swanlab_records(tmp_path / "output" / SWANLAB_DIR)[0].start
    assert start.project == "llamafactory"  # LLaMA-Factory's default `swanlab_project`
