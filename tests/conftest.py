"""Shared test fixtures: one LF_RAY_HOME, Ray instance, S3 server and copy of each tiny model per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Built models and datasets persist between sessions in the repo's (git-ignored) cache unless told otherwise.
os.environ.setdefault("LF_RAY_HOME", str(ROOT / ".lf_ray_home"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The S3 world of the session: moto's standalone server (the `s3_server` fixture) on this port. Set at import, so
# every Ray instance, worker and `ray job submit` cluster started later inherits it. The endpoint is forced, not
# defaulted: the suite creates and deletes buckets and must never reach a real account.
S3_PORT = free_port()
os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{S3_PORT}"
os.environ.pop("AWS_ENDPOINT_URL_S3", None)  # it would win over AWS_ENDPOINT_URL
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ.setdefault(_name, _value)


def start_moto_server(port: int, **env: str) -> subprocess.Popen:
    """`moto_server` in its own process on 127.0.0.1:port, answering once this returns."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
            return process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"moto_server on port {port} did not answer within 30 s (exit code {process.poll()})")


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto, not an in-process mock) at AWS_ENDPOINT_URL; yields that URL."""
    process = start_moto_server(S3_PORT)
    yield os.environ["AWS_ENDPOINT_URL"]
    stop_process(process)


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket on the session's S3 server, as "s3://<bucket>"."""
    import boto3

    bucket = f"lfr-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray shared by every test that needs one (starting Ray costs seconds)."""
    import ray

    from lf_ray.cluster import prepare_local_ray_environment

    if not ray.is_initialized():
        prepare_local_ray_environment()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_llama_path() -> str:
    from lf_ray.model.loader import resolve_model_path

    return resolve_model_path("builtin:tiny-llama")


@pytest.fixture(scope="session")
def tiny_qwen_path() -> str:
    from lf_ray.model.loader import resolve_model_path

    return resolve_model_path("builtin:tiny-qwen")


@pytest.fixture(scope="session")
def sft_adapter(tiny_llama_path, tmp_path_factory) -> Path:
    """A LoRA adapter of tiny-llama with non-zero lora_B (it changes the outputs), as an sft step would leave it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lf_ray.model.loader import load_causal_lm

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    path = tmp_path_factory.mktemp("sft_adapter")
    get_peft_model(load_causal_lm(tiny_llama_path), config).save_pretrained(path)
    return path


@pytest.fixture
def llama_tokenizer(tiny_llama_path):
    """A fresh tokenizer per test: templates may register stop words on it."""
    from lf_ray.model.loader import load_tokenizer

    return load_tokenizer(tiny_llama_path)


@pytest.fixture
def qwen_tokenizer(tiny_qwen_path):
    from lf_ray.model.loader import load_tokenizer

    return load_tokenizer(tiny_qwen_path)


def _random_rows(n: int, vocab_size: int, seed: int) -> list[dict]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, vocab_size, (16,), generator=generator).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * 16, "labels": ids})
    return rows


@pytest.fixture
def train_tiny(tiny_llama_path):
    """A real transformers Trainer on the builtin tiny Llama, a few steps long (trainer-log and board tests).

    `train_tiny(output_dir, callbacks, max_steps=6, resume_from=None)`: runs Trainer.train and returns it.

    Logs every step, evaluates every 3 steps, saves a checkpoint every 3 steps, counts input tokens.
    """
    from transformers import Trainer, TrainingArguments

    from lf_ray.model.loader import load_causal_lm

    def run(output_dir: Path, callbacks: list, max_steps: int = 6, resume_from: str | None = None) -> Trainer:
        model = load_causal_lm(tiny_llama_path)
        args = TrainingArguments(
            output_dir=str(output_dir),
            max_steps=max_steps,
            per_device_train_batch_size=2,
            learning_rate=1e-3,
            logging_steps=1,
            eval_strategy="steps",
            eval_steps=3,
            save_steps=3,
            include_num_input_tokens_seen=True,
            use_cpu=True,
            report_to="none",
            disable_tqdm=True,
            seed=0,
        )
        vocab = model.config.vocab_size
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_random_rows(32, vocab, seed=0),
            eval_dataset=_random_rows(4, vocab, seed=1),
            callbacks=callbacks,
        )
        trainer.train(resume_from_checkpoint=resume_from)
        return trainer

    return run
