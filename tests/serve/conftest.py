"""Session fixtures of the serve tests: two LoRA adapters trained once (see adapters.py)."""

from __future__ import annotations

import pytest

from lf_ray.artifacts import atomic_directory
from lf_ray.constants import lf_ray_home
from tests.serve.adapters import recipe_fingerprint, train_adapter


@pytest.fixture(scope="session")
def qwen_adapters(tiny_qwen_path) -> dict[str, str]:
    """Trained once, then reused from LF_RAY_HOME (keyed by the training recipe) across test sessions."""
    root = lf_ray_home() / "test-adapters" / recipe_fingerprint(tiny_qwen_path)[:12]
    adapters = {}
    for name in ("tools", "greeter"):
        folder = root / name
        if not (folder / "adapter_model.safetensors").is_file():
            with atomic_directory(folder) as tmp:
                train_adapter(name, tmp)
        adapters[name] = str(folder)
    return adapters
