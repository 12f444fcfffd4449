"""OpenAI chat messages → LLaMA-Factory's conversation (system, alternating turns, tools JSON) → prompt token ids,
rendered by the same template engine that training used. Bad conversations raise `BadRequest` saying which
message is wrong and why. Pure: no Ray."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from lf_ray.errors import TemplateError
from lf_ray.serve.api_errors import BadRequest

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lf_ray.data.templates import Template
    from lf_ray.serve.protocol import ChatCompletionRequest, ChatMessage

Conversation = tuple[list[dict[str, str]], str | None, str | None]
"""(messages with roles user / assistant / function / observation, system text, tools JSON)."""

_PROMPT_SIDE = ("user", "observation")
_ANSWER_SIDE = ("assistant", "function")


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if part.type != "text":
            raise BadRequest(
                f"messages[{index}] has a `{part.type}` content part; lf-ray serves text models only. "
                "Fix: send text parts (or a plain string).",
                param=f"messages[{index}].content",
            )
        parts.append(part.text or "")
    return "".join(parts)


def _answer_content(message: ChatMessage, index: int) -> tuple[str, str]:
    """(role, content) of an assistant message: tool calls become LF's `function` turn (a JSON list of calls)."""
    if not message.tool_calls:
        return "assistant", _text(message, index)
    calls = []
    for call in message.tool_calls:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError as err:
            raise BadRequest(
                f"messages[{index}].tool_calls: the arguments of `{call.function.name}` are not JSON ({err.msg}). "
                "Fix: send the arguments object as JSON text.",
                param=f"messages[{index}].tool_calls",
            ) from None
        calls.append({"name": call.function.name, "arguments": arguments})
    return "function", json.dumps(calls, ensure_ascii=False)


def _check_order(messages: list[dict[str, str]]) -> None:
    if not messages:
        raise BadRequest(
            "`messages` holds no user message. Fix: send at least one message with role `user`.", param="messages"
        )
    for i, message in enumerate(messages):
        expected = _PROMPT_SIDE if i % 2 == 0 else _ANSWER_SIDE
        if message["role"] not in expected:
            raise BadRequest(
                f"message {i} (after the system message) has role `{message['role']}` where "
                f"{' or '.join(expected)} was expected: lf-ray, like LLaMA-Factory, needs turns that alternate "
                "user (or tool) and assistant, ending with a user or tool message. Fix: merge consecutive "
                "messages of one role, or drop the trailing assistant message.",
                param="messages",
            )
    if len(messages) % 2 == 0:
        raise BadRequest(
            "the conversation ends with an assistant message, so there is nothing to answer. Fix: end with a user "
            "or tool message.",
            param="messages",
        )


def to_conversation(request: ChatCompletionRequest) -> Conversation:
    """LF's `_process_request`: a leading system (or developer) message becomes the system text, tool results
    become observations, assistant tool calls become function turns; turns must alternate."""
    system: str | None = None
    messages: list[dict[str, str]] = []
    for index, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            if index != 0:
                raise BadRequest(
                    f"messages[{index}] is a `{message.role}` message, which may only come first. "
                    "Fix: move it to the front or merge it into the first one.",
                    param=f"messages[{index}].role",
                )
            system = _text(message, index)
        elif message.role == "assistant":
            role, content = _answer_content(message, index)
            messages.append({"role": role, "content": content})
        else:
            role = "user" if message.role == "user" else "observation"
            messages.append({"role": role, "content": _text(message, index)})
    _check_order(messages)
    return messages, system, tools_json(request)


def tools_json(request: ChatCompletionRequest) -> str | None:
    """The JSON list of function descriptions the template renders, after `tool_choice` (none drops them; a named
    function keeps only that one; required cannot be enforced without constrained decoding and is refused)."""
    tools = [tool.function.model_dump(exclude_none=True) for tool in request.tools or []]
    choice = request.tool_choice
    if not tools or choice in (None, "auto"):
        return json.dumps(tools, ensure_ascii=False) if tools else None
    if choice == "none":
        return None
    if choice == "required":
        raise BadRequest(
            "`tool_choice: required` is not supported: the transformers engine cannot force a tool call. "
            "Fix: use `auto` (the model decides) or name the function to narrow the tools to it.",
            param="tool_choice",
        )
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    chosen = [tool for tool in tools if tool["name"] == name]
    if not chosen:
        known = ", ".join(tool["name"] for tool in tools)
        raise BadRequest(
            f"`tool_choice` names the function {name!r}, which is not among the request's tools ({known}). "
            'Fix: send {"type": "function", "function": {"name": <one of them>}}.',
            param="tool_choice",
        )
    return json.dumps(chosen, ensure_ascii=False)


def check_supported(request: Any) -> None:
    """Refuse what the engine cannot honour instead of ignoring it."""
    fmt = getattr(request, "response_format", None)
    if fmt is not None and fmt.type != "text":
        raise BadRequest(
            f"`response_format: {fmt.type}` is not supported: lf-ray does not constrain decoding to JSON. "
            "Fix: use `text` and ask for JSON in the prompt.",
            param="response_format",
        )
    for name in ("logprobs", "echo", "suffix", "best_of", "top_logprobs"):
        value = getattr(request, name, None)
        if value not in (None, False) and not (name == "best_of" and value == 1):
            raise BadRequest(f"`{name}` is not supported by lf-ray's engine. Fix: leave it out.", param=name)


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, template: Template, conversation: Conversation
) -> list[int]:
    """Prompt ids: the conversation plus an empty assistant turn, through `Template.encode_oneturn` (LF's way)."""
    messages, system, tools = conversation
    try:
        prompt_ids, _ = template.encode_oneturn(
            tokenizer, [*messages, {"role": "assistant", "content": ""}], system, tools
        )
    except TemplateError as err:
        raise BadRequest(f"the conversation cannot be rendered: {err}", param="messages") from None
    return prompt_ids
