"""`lf-ray chat CONFIG`: a terminal chat with streamed answers and history (`clear` forgets it, `exit` quits),
running the same engine, template and OpenAI request path as `lf-ray serve`, in this process, without Ray."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from lf_ray.serve.api_errors import ApiError
from lf_ray.serve.protocol import ChatCompletionRequest

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig
    from lf_ray.serve.service import ChatService

WELCOME = "Welcome to lf-ray chat: type `clear` to remove the history, `exit` to quit."


def answer(service: ChatService, model: str, messages: list[dict[str, str]], out: TextIO) -> str:
    """Stream one answer to `out` as it is generated; return its text."""
    request = ChatCompletionRequest(model=model, messages=messages, stream=True)
    text = ""
    for chunk in service.stream(service.prepare_chat(request)):
        for choice in chunk["choices"]:
            piece = choice["delta"].get("content") or ""
            if piece:
                out.write(piece)
                out.flush()
                text += piece
    return text


def chat_loop(
    service: ChatService, model: str, *, read: Callable[[str], str] = input, out: TextIO = sys.stdout
) -> None:
    """Read user lines until `exit` (or end of input), answering each with the whole history as context."""
    history: list[dict[str, str]] = []
    out.write(f"{WELCOME}\n")
    while True:
        try:
            query = read("\nUser: ")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        command = query.strip()
        if command == "exit":
            return
        if command == "clear":
            history = []
            out.write("History has been removed.\n")
            continue
        if not command:
            continue
        out.write("Assistant: ")
        out.flush()
        messages = [*history, {"role": "user", "content": query}]
        try:
            reply = answer(service, model, messages, out)
        except ApiError as err:
            out.write(f"\n[error] {err.message} (type `clear` to start over)\n")
            continue
        out.write("\n")
        history = [*messages, {"role": "assistant", "content": reply}]


def run_chat(cfg: LfRayConfig, *, model: str | None = None) -> None:
    """Load the model of `cfg` and chat with it (or with one of its `lora_modules` adapters) in the terminal."""
    from lf_ray.serve.service import ChatService

    service = ChatService.from_config(cfg)
    chosen = model or service.model_id
    adapter = service.adapter_for(chosen)  # an unknown name fails here, before the first question
    if adapter is not None:
        service.ensure_adapter(adapter)
    chat_loop(service, chosen)
