"""`lf-ray chat`: driven through a real pseudo-terminal, and its loop with a recording output (streaming, history)."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from lf_ray.config import prepare_config
from lf_ray.serve.chat import chat_loop
from lf_ray.serve.service import ChatService
from tests.serve.adapters import GREETING

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chat_config(tmp_path_factory, qwen_adapters) -> Path:
    path = tmp_path_factory.mktemp("chat") / "chat.yaml"
    config = {"model_name_or_path": "builtin:tiny-qwen", "lora_modules": qwen_adapters, "do_sample": False}
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def test_chat_in_a_terminal(chat_config):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LF_RAY_LOG_LEVEL": "ERROR"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "lf_ray", "chat", str(chat_config), "max_new_tokens=32", "--model", "greeter"],
        cwd=str(ROOT),
        env=env,
        encoding="utf-8",
        timeout=180,
    )
    try:
        child.expect("Welcome to lf-ray chat")
        child.expect("User: ")
        child.sendline("Hello!")
        child.expect(f"Assistant: {GREETING}")
        child.expect("User: ")
        child.sendline("clear")
        child.expect("History has been removed.")
        child.expect("User: ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


class Recorder(io.StringIO):
    """Keeps every write, so a test sees that the answer arrived in pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_chat_loop_streams_and_keeps_history(qwen_adapters):
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-qwen", f"lora_modules={json.dumps(qwen_adapters)}"])
    service = ChatService.from_config(cfg)
    seen: list[list[dict]] = []
    original = service.prepare_chat

    def spy(request):
        seen.append([m.model_dump(include={"role", "content"}) for m in request.messages])
        return original(request)

    service.prepare_chat = spy  # records what the loop sends; generation stays real
    service.generating.do_sample = False
    lines = iter(["Hello!", "Who are you?", "clear", "Tell me a joke.", "exit"])
    out = Recorder()
    chat_loop(service, "greeter", read=lambda prompt: next(lines), out=out)
    assert out.getvalue().count(f"Assistant: {GREETING}\n") == 3
    assert len([w for w in out.writes if w and w in GREETING]) > 3  # streamed token by token
    assert [len(messages) for messages in seen] == [1, 3, 1]  # history grows, `clear` empties it
    assert seen[1][1] == {"role": "assistant", "content": GREETING}
