"""Fixtures of the serve tests: two LoRA adapters trained once (see adapters.py), and a service holding both."""

from __future__ import annotations

import json

import pytest

from lf_ray.artifacts import atomic_directory
from lf_ray.config import prepare_config
from lf_ray.constants import lf_ray_home
from lf_ray.serve.service import ChatService
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


@pytest.fixture(scope="module")
def service(qwen_adapters) -> ChatService:
    """The tiny Qwen with both adapters loaded, in this process (no Ray)."""
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-qwen", f"lora_modules={json.dumps(qwen_adapters)}"])
    svc = ChatService.from_config(cfg)
    for name in qwen_adapters:
        svc.ensure_adapter(name)
    return svc


def prompt(service: ChatService, text: str) -> list[int]:
    """The prompt ids of one user message, as the chat endpoint encodes it."""
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
    return service.template.encode_oneturn(service.tokenizer, messages)[0]
