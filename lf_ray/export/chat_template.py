"""A template written out for other engines: a Jinja `chat_template` for the tokenizer, and an Ollama Modelfile.

The exported tokenizer renders a conversation exactly as `Template.render` does, so transformers, vLLM and
Ray Serve LLM build the same prompts training saw. This is LLaMA-Factory's `_get_jinja_template` (with its
LLaMA-2 variant that fuses the system text into the first user turn) and `get_ollama_modelfile`, with three
differences, all to match `render`: an empty system message falls back to the default system, `{{idx}}`
becomes the turn number, and a role other than user / assistant is refused instead of silently dropped.
Tools, function / observation turns and reasoning templates' thought handling are not written (nor are they
by LLaMA-Factory). Pure: no Ray, no torch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lf_ray.data.formatters import Slot
from lf_ray.errors import TemplateError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lf_ray.data.templates import Template

_PLACEHOLDER = re.compile(r"\{\{(content|idx)\}\}")
_JINJA_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TURN_NUMBER = "((loop.index0 // 2) | string)"
DEFAULT_NUM_CTX = 4096


# --- slots -> expressions ----------------------------------------------------------------------------------


def _jinja_literal(text: str) -> str:
    return "'" + "".join(_JINJA_ESCAPES.get(char, char) for char in text) + "'"


def _special_text(slot: Slot, tokenizer: PreTrainedTokenizerBase, template: Template) -> str:
    """The literal text of a bos / eos slot (the tokenizer's token, never a variable that could be replaced)."""
    if slot.kind == "token":
        raise TemplateError(
            f"template `{template.name}` has a `{{token: {slot.token}}}` slot, which a Jinja chat template cannot "
            "express (it stands for one id, not text). Fix: write the token as text in templates.yaml if the "
            "tokenizer encodes it as that one id, or serve the model with lf-ray, which renders templates itself."
        )
    token = tokenizer.bos_token if slot.kind == "bos" else tokenizer.eos_token
    return token or ""


def _split_text(text: str, variables: dict[str, str]) -> list[tuple[bool, str]]:
    """(is_variable, piece) pieces; like `StringFormatter.apply`, only a placeholder's first use is filled."""
    pieces: list[tuple[bool, str]] = []
    seen: set[str] = set()
    start = 0
    for match in _PLACEHOLDER.finditer(text):
        name = match.group(1)
        if name not in variables or name in seen:
            continue
        seen.add(name)
        pieces += [(False, text[start : match.start()]), (True, variables[name])]
        start = match.end()
    pieces.append((False, text[start:]))
    return [(is_var, piece) for is_var, piece in pieces if piece]


def _slots_to_pieces(
    slots: tuple[Slot, ...], tokenizer: PreTrainedTokenizerBase, template: Template, variables: dict[str, str]
) -> list[tuple[bool, str]]:
    pieces: list[tuple[bool, str]] = []
    for slot in slots:
        if isinstance(slot, str):
            pieces += _split_text(slot, variables)
        else:
            text = _special_text(slot, tokenizer, template)
            if text:
                pieces.append((False, text))
    return pieces


def _jinja_expr(pieces: list[tuple[bool, str]]) -> str:
    return " + ".join(piece if is_var else _jinja_literal(piece) for is_var, piece in pieces) or "''"


def _system_slots(template: Template) -> tuple[Slot, ...]:
    """What the system text becomes; a fused (LLaMA-2) template keeps only its first, textual slot."""
    slots = template.format_system.slots
    if template.system_in_first_user:
        return slots[:1] if slots and isinstance(slots[0], str) else ()
    return slots


# --- Jinja -------------------------------------------------------------------------------------------------


def jinja_chat_template(template: Template, tokenizer: PreTrainedTokenizerBase) -> str:
    """A Jinja chat template that renders messages (an optional leading system one) exactly as `template`.

    The generation prompt needs no branch: every template's user turn already ends with the assistant header.
    Raises TemplateError for a template with `{token: ...}` slots.
    """

    def expr(slots: tuple[Slot, ...], **variables: str) -> str:
        return _jinja_expr(_slots_to_pieces(slots, tokenizer, template, variables))

    prefix = _slots_to_pieces(template.format_prefix.slots, tokenizer, template, {})
    system = expr(_system_slots(template), content="system_message")
    user = expr(template.format_user.slots, content="content", idx=_TURN_NUMBER)
    assistant = expr(template.format_assistant.slots, content="content")
    parts = [
        "{{ " + _jinja_expr(prefix) + " }}" if prefix else "",
        "{% set system_message = " + _jinja_literal(template.default_system) + " %}",
        "{% if messages and messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
        "{% if messages[0]['content'] %}{% set system_message = messages[0]['content'] %}{% endif %}"
        "{% else %}{% set loop_messages = messages %}{% endif %}",
    ]
    if template.system_in_first_user:
        parts.append(
            "{% for message in loop_messages %}"
            "{% if loop.first and system_message %}{% set content = " + system + " + message['content'] %}"
            "{% else %}{% set content = message['content'] %}{% endif %}"
        )
    else:
        parts.append(
            "{% if system_message %}{{ " + system + " }}{% endif %}"
            "{% for message in loop_messages %}{% set content = message['content'] %}"
        )
    parts.append(
        "{% if message['role'] == 'user' %}{{ " + user + " }}"
        "{% elif message['role'] == 'assistant' %}{{ " + assistant + " }}"
        "{% else %}{{ raise_exception('this chat template (lf-ray template " + template.name + ") takes user and "
        "assistant messages after an optional system one, got role ' + message['role']) }}"
        "{% endif %}{% endfor %}"
    )
    return "".join(parts)


# --- Ollama ------------------------------------------------------------------------------------------------


def _go_text(pieces: list[tuple[bool, str]]) -> str:
    return "".join("{{ " + piece + " }}" if is_var else piece for is_var, piece in pieces)


def ollama_template(template: Template, tokenizer: PreTrainedTokenizerBase) -> str:
    """The Go template of an Ollama Modelfile (`.System`, then `.Messages` with `.Role` / `.Content`)."""

    def text(slots: tuple[Slot, ...], placeholder: str | None = None) -> str:
        variables = {"content": placeholder} if placeholder else {}
        return _go_text(_slots_to_pieces(slots, tokenizer, template, variables))

    prefix = text(template.format_prefix.slots)
    assistant = text(template.format_assistant.slots, ".Content")
    if template.system_in_first_user:  # the system text opens the first user turn, then is cleared
        fused = "{{ if $system }}" + text(_system_slots(template), "$system") + '{{ $system = "" }}{{ end }}'
        head = "{{ $system := .System }}"
        user = text(template.format_user.slots, "__CONTENT__").replace("{{ __CONTENT__ }}", fused + "{{ .Content }}")
    else:
        head = "{{ if .System }}" + text(template.format_system.slots, ".System") + "{{ end }}"
        user = text(template.format_user.slots, ".Content")
    return (
        f"{prefix}{head}{{{{ range .Messages }}}}"
        f'{{{{ if eq .Role "user" }}}}{user}{{{{ else if eq .Role "assistant" }}}}{assistant}{{{{ end }}}}'
        "{{ end }}"
    )


def ollama_modelfile(template: Template, tokenizer: PreTrainedTokenizerBase, num_ctx: int = DEFAULT_NUM_CTX) -> str:
    """LLaMA-Factory's Modelfile: `FROM .` (the exported folder), the template, the default system, the stop
    tokens (eos and the template's stop words) and the context length."""
    lines = [
        "# ollama modelfile auto-generated by lf-ray",
        "",
        "FROM .",
        "",
        f'TEMPLATE """{ollama_template(template, tokenizer)}"""',
        "",
    ]
    if template.default_system:
        lines += [f'SYSTEM """{template.default_system}"""', ""]
    lines += [f'PARAMETER stop "{tokenizer.convert_ids_to_tokens(i)}"' for i in template.get_stop_token_ids(tokenizer)]
    lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"
