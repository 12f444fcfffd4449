"""Derive a template from a tokenizer's own `chat_template`, for models no table entry names.

Renders placeholder conversations with `apply_chat_template` and cuts the text into user / assistant /
system slots, as LLaMA-Factory's `parse_template` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lf_ray.data.formatters import FunctionFormatter, StringFormatter, ToolFormatter
from lf_ray.data.templates import Template
from lf_ray.errors import TemplateError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_CONTENT = "{{content}}"


def _removed_chars(short: str, long: str) -> str:
    """The characters of `long` that are not in `short` (a subsequence of it)."""
    i, diff = 0, ""
    for char in long:
        if i < len(short) and short[i] == char:
            i += 1
        else:
            diff += char
    return diff


def derive_template(tokenizer: PreTrainedTokenizerBase) -> Template:
    if not isinstance(getattr(tokenizer, "chat_template", None), str):
        raise TemplateError(
            f"`template` is not set and the tokenizer `{tokenizer.name_or_path}` has no chat_template to "
            "derive one from; set `template:` (e.g. llama3, qwen, chatml, default; see `lf-ray templates`)"
        )

    def render(messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)

    prefix = tokenizer.decode(tokenizer.encode(""))
    system_slot = render([{"role": "system", "content": _CONTENT}], False)[len(prefix) :]
    user_slot_empty_system = render([{"role": "system", "content": ""}, {"role": "user", "content": _CONTENT}], True)[
        len(prefix) :
    ]
    user_slot = render([{"role": "user", "content": _CONTENT}], True)[len(prefix) :]
    assistant_slot = render([{"role": "user", "content": _CONTENT}, {"role": "assistant", "content": _CONTENT}], False)[
        len(prefix) + len(user_slot) :
    ]
    reasoning = "<think>" in assistant_slot
    assistant_slot = assistant_slot.replace("<think>", "").replace("</think>", "").lstrip("\n")

    default_system = ""
    if len(user_slot) > len(user_slot_empty_system):  # the chat template injects a default system prompt
        default_system = _removed_chars(user_slot_empty_system, user_slot)
        user_slot = user_slot[len(system_slot.replace(_CONTENT, default_system, 1)) :]

    return Template(
        name=f"derived:{tokenizer.name_or_path}",
        format_user=StringFormatter((user_slot,)),
        format_assistant=StringFormatter((assistant_slot,)),
        format_system=StringFormatter((system_slot,)),
        format_function=FunctionFormatter((assistant_slot,), tool_format="default"),
        format_observation=StringFormatter((user_slot,)),
        format_tools=ToolFormatter("default"),
        format_prefix=StringFormatter((prefix,) if prefix else ()),
        default_system=default_system,
        reasoning=reasoning,
    )
