"""Every environment variable lf-ray reads and every shared default, in one place."""

from __future__ import annotations

import os
from pathlib import Path

IGNORE_INDEX = -100
"""Label id the loss skips (the prompt part of a sequence)."""

ENV_HOME = "LF_RAY_HOME"
ENV_RAY_ADDRESS = "RAY_ADDRESS"
ENV_MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_VERBOSE = "LF_RAY_VERBOSE"
"""`1`: Ray's workers print to the console as Ray does (what `--verbose` sets); otherwise they print to a log file
under LF_RAY_HOME/logs and the console shows lf-ray's own lines."""
ENV_LOG_LEVEL = "LF_RAY_LOG_LEVEL"
"""Log level of the Ray libraries' own messages (default WARNING: lf-ray prints its own summaries)."""

BUILTIN_PREFIX = "builtin:"
"""`model_name_or_path: builtin:tiny-llama` names a model lf-ray builds locally."""

BUILTIN_DATASET_DIR = "builtin"
"""`dataset_dir: builtin` points at the demo datasets shipped inside the package."""

ASSETS_DIR = Path(__file__).parent / "assets"
DEMO_DATA_DIR = ASSETS_DIR / "data"
EVAL_TASKS_DIR = ASSETS_DIR / "eval"
"""`task_dir: builtin` points at the multiple-choice tasks shipped inside the package (demo_mmlu)."""

MANIFEST_NAME = "manifest.json"
DATASET_TRAIN_DIR = "train"
DATASET_EVAL_DIR = "eval"


def lf_ray_home() -> Path:
    """Root of lf-ray's local cache (built models, tokenized datasets): LF_RAY_HOME or ~/.cache/lf_ray."""
    return Path(os.environ.get(ENV_HOME) or Path.home() / ".cache" / "lf_ray").expanduser()


DEMO_PIPELINE = ASSETS_DIR / "pipelines" / "demo.yaml"
"""The pipeline `lf-ray demo` runs (pipelines/demo.yaml in the repository links to it)."""


ENV_API_HOST = "API_HOST"
ENV_API_PORT = "API_PORT"
ENV_API_KEY = "API_KEY"
"""LLaMA-Factory's `api` variables: where `lf-ray serve` listens, and the Bearer key it requires when set."""

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8000


def api_host(configured: str | None = None) -> str:
    """The serve bind address: the config's `api_host`, else API_HOST, else 127.0.0.1 (never all interfaces)."""
    return configured or os.environ.get(ENV_API_HOST) or DEFAULT_API_HOST


def api_port(configured: int | None = None) -> int:
    """The serve port: the config's `api_port`, else API_PORT, else 8000."""
    return configured if configured is not None else _env_port(ENV_API_PORT, DEFAULT_API_PORT)


def _env_port(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        from lf_ray.errors import ConfigError

        raise ConfigError(f"{name}={text!r} is not a port number; set it to e.g. {default}, or unset it") from None


def api_key() -> str | None:
    """The Bearer key clients must send (API_KEY), or None when the endpoint is open."""
    return os.environ.get(ENV_API_KEY) or None


ENV_BOARD_HOST = "GRADIO_SERVER_NAME"
ENV_BOARD_PORT = "GRADIO_SERVER_PORT"
ENV_BOARD_SHARE = "GRADIO_SHARE"
"""Gradio's own variables: where `lf-ray webui` / `webchat` listen, and whether to open a public share link."""

DEFAULT_BOARD_HOST = "127.0.0.1"
DEFAULT_BOARD_PORT = 7860


def board_host(given: str | None = None) -> str:
    return given or os.environ.get(ENV_BOARD_HOST) or DEFAULT_BOARD_HOST


def board_port(given: int | None = None) -> int:
    return given if given is not None else _env_port(ENV_BOARD_PORT, DEFAULT_BOARD_PORT)


def board_share(given: bool | None = None) -> bool:
    if given is not None:
        return given
    return os.environ.get(ENV_BOARD_SHARE, "").strip().lower() in ("1", "true", "yes")
