"""The template engine: turns canonical messages into token ids, LLaMA-Factory's way.

The templates themselves are data (`templates.yaml`); this module loads that table, and encodes
conversations into (prompt ids, response ids) pairs that the processors turn into labels. Pure: no Ray.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lf_ray.data.formatters import EOS, FunctionFormatter, Slot, SpecialToken, StringFormatter, ToolFormatter
from lf_ray.data.tool_formats import FunctionCall, get_tool_format
from lf_ray.errors import TemplateError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TABLE_PATH = Path(__file__).with_name("templates.yaml")
DEFAULT_THOUGHT_WORDS = ("<think>\n", "\n</think>\n\n")
_SPECIAL_LOOKING = re.compile(r"<\|[^|<>\s]+\|>|<｜[^｜]+｜>|<(?:start|end)_of_turn>")

Message = dict[str, str]


@dataclass(frozen=True)
class Template:
    name: str
    format_user: StringFormatter
    format_assistant: StringFormatter
    format_system: StringFormatter
    format_function: FunctionFormatter
    format_observation: StringFormatter
    format_tools: ToolFormatter
    format_prefix: StringFormatter
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    thought_words: tuple[str, str] = DEFAULT_THOUGHT_WORDS
    efficient_eos: bool = False
    replace_eos: bool = False
    replace_jinja_template: bool = False
    system_in_first_user: bool = False
    reasoning: bool = False
    enable_thinking: bool | None = True
    preserve_thinking: bool = False  # keep the thoughts of earlier assistant turns (reasoning templates)
    empty_thought: str | None = None  # what an empty thought is written as, when not the two thought words

    # --- encoding -----------------------------------------------------------------------------------

    def encode_oneturn(
        self,
        tokenizer: PreTrainedTokenizerBase,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
    ) -> tuple[list[int], list[int]]:
        """All turns but the last become the prompt; the last message is the response. Earlier assistant turns
        lose their thoughts unless `preserve_thinking`, as a reasoning model's chat template drops them."""
        if self.reasoning:
            messages = self._strip_history_thoughts(messages)
        encoded = self._encode(tokenizer, messages, system, tools)
        prompt_ids = [token for ids in encoded[:-1] for token in ids]
        response_ids = encoded[-1]
        if self.reasoning and not self._has_thought(messages[-1]["content"]):
            if self.enable_thinking:  # the model learns to open an empty thought itself
                response_ids = self.thought_ids(tokenizer) + response_ids
            else:  # the empty thought is given in the prompt
                prompt_ids = prompt_ids + self.thought_ids(tokenizer)
        return prompt_ids, response_ids

    def encode_multiturn(
        self,
        tokenizer: PreTrainedTokenizerBase,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
        discard_history_thoughts: bool = False,
    ) -> list[tuple[list[int], list[int]]]:
        """One (prompt ids, response ids) pair per user/assistant exchange.

        `discard_history_thoughts` (reasoning templates; sft with `mask_history` and without `preserve_thinking`,
        as LLaMA-Factory 0.9.5): the earlier answers lose their thoughts, and only the last gets an empty one.
        """
        last = len(messages) - 1
        if self.reasoning:
            messages = [
                {**m, "content": self.remove_thought(m["content"])}
                if i % 2 and (self.enable_thinking is False or (discard_history_thoughts and i < last))
                else m
                for i, m in enumerate(messages)
            ]
        encoded = self._encode(tokenizer, messages, system, tools)
        if self.reasoning:
            for i in [last - 1] if discard_history_thoughts else range(0, len(messages), 2):
                if not self._has_thought(messages[i + 1]["content"]):
                    if self.enable_thinking:
                        encoded[i + 1] = self.thought_ids(tokenizer) + encoded[i + 1]
                    else:
                        encoded[i] = encoded[i] + self.thought_ids(tokenizer)
        return [(encoded[i], encoded[i + 1]) for i in range(0, len(encoded), 2)]

    def render(
        self,
        tokenizer: PreTrainedTokenizerBase,
        messages: list[Message],
        system: str | None = None,
        tools: str | None = None,
        add_generation_prompt: bool = False,
    ) -> str:
        """The text the ids stand for; with a generation prompt the last message must be a user one."""
        if add_generation_prompt:
            messages = [*messages, {"role": "assistant", "content": ""}]
        slots = [slot for turn in self._format_turns(messages, system, tools) for slot in turn]
        text = "".join(_slot_text(tokenizer, slot) for slot in slots)
        if add_generation_prompt:
            text = text[: len(text) - len(self._assistant_suffix_text(tokenizer))]
        return text

    def _assistant_suffix_text(self, tokenizer: PreTrainedTokenizerBase) -> str:
        return "".join(_slot_text(tokenizer, slot) for slot in self.format_assistant.apply(content=""))

    def _encode(
        self,
        tokenizer: PreTrainedTokenizerBase,
        messages: list[Message],
        system: str | None,
        tools: str | None,
    ) -> list[list[int]]:
        return [_slots_to_ids(tokenizer, turn) for turn in self._format_turns(messages, system, tools)]

    def _format_turns(self, messages: list[Message], system: str | None, tools: str | None) -> list[list[Slot]]:
        """Turn 0: prefix + system + first message; turn t: message t."""
        system = system or self.default_system
        turns: list[list[Slot]] = []
        for i, message in enumerate(messages):
            elements: list[Slot] = []
            system_text = ""
            if i == 0:
                elements += self.format_prefix.apply()
                if system or tools:
                    tool_text = self.format_tools.apply(tools) if tools else ""
                    system_slots = self.format_system.apply(content=system + tool_text)
                    if self.system_in_first_user:
                        system_text = system_slots[0] if isinstance(system_slots[0], str) else ""
                    else:
                        elements += system_slots
            elements += self._format_message(message, i, system_text)
            turns.append(elements)
        return turns

    def _format_message(self, message: Message, index: int, system_text: str) -> list[Slot]:
        role, content = message["role"], message["content"]
        if role == "user":
            return self.format_user.apply(content=system_text + content, idx=str(index // 2))
        if role == "assistant":
            return self.format_assistant.apply(content=content)
        if role == "observation":
            return self.format_observation.apply(content=content)
        if role == "function":
            thought_words = None if self.system_in_first_user else self.thought_words
            return self.format_function.apply(content=content, thought_words=thought_words)
        raise TemplateError(
            f"unexpected role `{role}` in a conversation; roles are user, assistant, function, observation "
            "(system goes in the `system` column)"
        )

    # --- thoughts (reasoning templates) -------------------------------------------------------------

    def _has_thought(self, content: str) -> bool:
        return self.thought_words[0].strip() in content or self.thought_words[1].strip() in content

    def _strip_history_thoughts(self, messages: list[Message]) -> list[Message]:
        messages = copy.deepcopy(messages)
        if not self.preserve_thinking:
            for i in range(1, len(messages) - 2, 2):
                messages[i]["content"] = self.remove_thought(messages[i]["content"])
        if self.enable_thinking is False:
            messages[-1]["content"] = self.remove_thought(messages[-1]["content"])
        return messages

    def remove_thought(self, content: str) -> str:
        pattern = re.compile(f"{re.escape(self.thought_words[0])}(.*?){re.escape(self.thought_words[1])}", re.DOTALL)
        return pattern.sub("", content).lstrip("\n")

    def thought_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        """The ids of an empty thought (GLM-4.7 writes only the closing `</think>`)."""
        empty = self.empty_thought if self.empty_thought is not None else self.thought_words[0] + self.thought_words[1]
        return tokenizer.encode(empty, add_special_tokens=False)

    # --- tokenizer fixes, stop ids, tools -----------------------------------------------------------

    def fix_special_tokens(self, tokenizer: PreTrainedTokenizerBase, allow_new_tokens: bool = False) -> None:
        """Make eos the template's first stop word (replace_eos), set pad, register the other stop words.

        Adding a token the vocabulary lacks would give ids past the model's embedding table, so it is
        refused unless `allow_new_tokens` (the config's `resize_vocab`).
        """
        stop_words = list(self.stop_words)
        if self.replace_eos:
            if tokenizer.eos_token != stop_words[0]:
                self._require_tokens(tokenizer, [stop_words[0]], allow_new_tokens)
                tokenizer.add_special_tokens({"eos_token": stop_words[0]})
            stop_words = stop_words[1:]
        if tokenizer.eos_token_id is None:
            self._require_tokens(tokenizer, ["<|endoftext|>"], allow_new_tokens)
            tokenizer.add_special_tokens({"eos_token": "<|endoftext|>"})
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if stop_words:
            self._require_tokens(tokenizer, stop_words, allow_new_tokens)
            _add_extra_special_tokens(tokenizer, stop_words)
        self._require_tokens(tokenizer, self.special_tokens_used(), allow_new_tokens)

    def special_tokens_used(self) -> list[str]:
        """Control tokens the template writes as text (`<|im_start|>`...) or names (`{token: <sep>}`), which must be
        single ids."""
        slots = [
            slot
            for formatter in (
                self.format_user,
                self.format_assistant,
                self.format_system,
                self.format_function,
                self.format_observation,
                self.format_prefix,
            )
            for slot in formatter.slots
        ]
        found = {match for slot in slots if isinstance(slot, str) for match in _SPECIAL_LOOKING.findall(slot)}
        named = {slot.token for slot in slots if isinstance(slot, SpecialToken) and slot.token}
        return sorted(found | named | set(self.stop_words))

    def _require_tokens(self, tokenizer: PreTrainedTokenizerBase, tokens: list[str], allow_new: bool) -> None:
        vocab = tokenizer.get_vocab()
        missing = [token for token in tokens if token not in vocab]
        if missing and not allow_new:
            raise TemplateError(
                f"template `{self.name}` needs the special token(s) {', '.join(missing)}, which the tokenizer "
                f"`{getattr(tokenizer, 'name_or_path', '?')}` does not have; pick the template that matches "
                "the model (for builtin models leave `template` unset), or set `resize_vocab: true` to add them"
            )

    def get_stop_token_ids(self, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        ids = {tokenizer.eos_token_id} | {tokenizer.convert_tokens_to_ids(word) for word in self.stop_words}
        return sorted(token for token in ids if token is not None)

    def extract_tool(self, content: str) -> str | list[FunctionCall]:
        return self.format_tools.extract(content)

    def with_options(
        self,
        *,
        tool_format: str | None = None,
        default_system: str | None = None,
        enable_thinking: bool | None = True,
        preserve_thinking: bool = False,
    ) -> Template:
        """A copy with the config's overrides; the shared table is never mutated."""
        changes: dict[str, Any] = {}
        if tool_format is not None:
            slots: tuple[Slot, ...] = ("{{content}}",) if self.efficient_eos else ("{{content}}", EOS)
            changes["format_function"] = FunctionFormatter(slots, tool_format=tool_format)
            changes["format_tools"] = ToolFormatter(tool_format)
        if default_system is not None:
            changes["default_system"] = default_system
        if self.reasoning:
            changes.update(enable_thinking=enable_thinking, preserve_thinking=preserve_thinking)
        return dataclasses.replace(self, **changes)


def _add_extra_special_tokens(tokenizer: PreTrainedTokenizerBase, tokens: list[str]) -> None:
    """Register tokens as special without dropping the existing ones (the keyword changed in transformers 5)."""
    try:
        tokenizer.add_special_tokens({"extra_special_tokens": tokens}, replace_extra_special_tokens=False)
    except TypeError:  # transformers 4
        tokenizer.add_special_tokens({"additional_special_tokens": tokens}, replace_additional_special_tokens=False)


# --- ids -----------------------------------------------------------------------------------------------


def _slots_to_ids(tokenizer: PreTrainedTokenizerBase, slots: list[Slot]) -> list[int]:
    ids: list[int] = []
    for slot in slots:
        if isinstance(slot, str):
            if slot:
                ids += tokenizer.encode(slot, add_special_tokens=False)
        elif slot.kind == "token":
            ids.append(tokenizer.convert_tokens_to_ids(slot.token))
        else:
            token_id = tokenizer.bos_token_id if slot.kind == "bos" else tokenizer.eos_token_id
            if token_id is not None:
                ids.append(token_id)
    return ids


def _slot_text(tokenizer: PreTrainedTokenizerBase, slot: Slot) -> str:
    if isinstance(slot, str):
        return slot
    if slot.kind == "token":
        return slot.token or ""
    token = tokenizer.bos_token if slot.kind == "bos" else tokenizer.eos_token
    return token or ""


# --- the table -------------------------------------------------------------------------------------------


def _parse_slots(raw: list[Any], where: str) -> tuple[Slot, ...]:
    slots: list[Slot] = []
    for item in raw:
        if isinstance(item, str):
            slots.append(item)
        elif isinstance(item, dict) and item.get("special") in ("bos", "eos"):
            slots.append(SpecialToken(item["special"]))
        elif isinstance(item, dict) and isinstance(item.get("token"), str):
            slots.append(SpecialToken("token", item["token"]))
        else:
            raise TemplateError(f"bad slot {item!r} in {where}; use text, {{special: bos|eos}} or {{token: <x>}}")
    return tuple(slots)


_TABLE_KEYS = (
    "user", "assistant", "system", "function", "observation", "tools", "prefix", "tool_format", "default_system",
    "stop_words", "thought_words", "empty_thought", "efficient_eos", "replace_eos", "replace_jinja_template",
    "system_in_first_user", "reasoning",
)  # fmt: skip


def _check_keys(spec: dict[str, Any], where: str) -> None:
    for key in spec:
        if key not in _TABLE_KEYS:
            close = difflib.get_close_matches(key, _TABLE_KEYS, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise TemplateError(f"unknown key `{key}` in {where}; {hint}the keys are: {', '.join(_TABLE_KEYS)}")


def build_template(name: str, spec: dict[str, Any]) -> Template:
    """Apply LLaMA-Factory's defaults to one table entry."""
    where = f"{TABLE_PATH.name}:{name}"
    _check_keys(spec, where)

    def slots(key: str, default: tuple[Slot, ...]) -> tuple[Slot, ...]:
        return _parse_slots(spec[key], f"{where}.{key}") if key in spec else default

    efficient_eos = bool(spec.get("efficient_eos", False))
    default_assistant: tuple[Slot, ...] = ("{{content}}",) if efficient_eos else ("{{content}}", EOS)
    user = slots("user", ("{{content}}",))
    assistant = slots("assistant", default_assistant)
    tool_format = spec.get("tool_format", "default")
    get_tool_format(tool_format)  # an unknown name fails when the table loads, not at the first tool call
    return Template(
        name=name,
        format_user=StringFormatter(user),
        format_assistant=StringFormatter(assistant),
        format_system=StringFormatter(slots("system", ("{{content}}",))),
        format_function=FunctionFormatter(slots("function", assistant), tool_format=tool_format),
        format_observation=StringFormatter(slots("observation", user)),
        format_tools=ToolFormatter(tool_format, slots=slots("tools", ())),
        format_prefix=StringFormatter(slots("prefix", ())),
        default_system=spec.get("default_system", ""),
        stop_words=tuple(spec.get("stop_words", ())),
        thought_words=tuple(spec.get("thought_words", DEFAULT_THOUGHT_WORDS)),  # type: ignore[arg-type]
        efficient_eos=efficient_eos,
        replace_eos=bool(spec.get("replace_eos", False)),
        replace_jinja_template=bool(spec.get("replace_jinja_template", False)),
        system_in_first_user=bool(spec.get("system_in_first_user", False)),
        reasoning=bool(spec.get("reasoning", False)),
        empty_thought=spec.get("empty_thought"),
    )


@functools.cache
def template_table() -> dict[str, Template]:
    with TABLE_PATH.open(encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    return {name: build_template(name, spec) for name, spec in raw.items()}


def get_template(name: str) -> Template:
    table = template_table()
    if name not in table:
        close = difflib.get_close_matches(name, table, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        raise TemplateError(
            f"unknown template `{name}`; {hint}available: {', '.join(sorted(table))} "
            "(or leave `template` unset to derive it from the tokenizer's chat_template)"
        )
    return table[name]


def resolve_template(
    tokenizer: PreTrainedTokenizerBase,
    name: str | None,
    *,
    tool_format: str | None = None,
    default_system: str | None = None,
    enable_thinking: bool | None = True,
    preserve_thinking: bool = False,
    train_on_prompt: bool = False,
    resize_vocab: bool = False,
) -> Template:
    """The template the config asks for (or derived from the tokenizer), with the tokenizer fixed to fit it."""
    if name is None:
        from lf_ray.data.derived_template import derive_template

        template = derive_template(tokenizer)
    else:
        template = get_template(name)
    if train_on_prompt and template.efficient_eos:
        raise TemplateError(
            f"template `{template.name}` uses efficient_eos, which cannot train on the prompt; "
            "set `train_on_prompt: false` or choose another template"
        )
    template = template.with_options(
        tool_format=tool_format,
        default_system=default_system,
        enable_thinking=enable_thinking,
        preserve_thinking=preserve_thinking,
    )
    template.fix_special_tokens(tokenizer, allow_new_tokens=resize_vocab)
    return template
