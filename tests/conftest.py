"""Shared test fixtures: one LF_RAY_HOME, one Ray instance and one copy of each tiny model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Built models and datasets persist between sessions in the repo's (git-ignored) cache unless told otherwise.
os.environ.setdefault("LF_RAY_HOME", str(ROOT / ".lf_ray_home"))


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray shared by every test that needs one (starting Ray costs seconds)."""
    import ray

    if not ray.is_initialized():
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


@pytest.fixture
def llama_tokenizer(tiny_llama_path):
    """A fresh tokenizer per test: templates may register stop words on it."""
    from lf_ray.model.loader import load_tokenizer

    return load_tokenizer(tiny_llama_path)


@pytest.fixture
def qwen_tokenizer(tiny_qwen_path):
    from lf_ray.model.loader import load_tokenizer

    return load_tokenizer(tiny_qwen_path)
