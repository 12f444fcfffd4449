"""Every environment variable lf-ray reads and every shared default, in one place."""

from __future__ import annotations

import os
from pathlib import Path

IGNORE_INDEX = -100
"""Label id the loss skips (the prompt part of a sequence)."""

ENV_HOME = "LF_RAY_HOME"
ENV_RAY_ADDRESS = "RAY_ADDRESS"
ENV_MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
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
