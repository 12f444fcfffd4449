"""Streaming text that may be a tool call: hold the output back while it still looks like the start of one,
stream it as content once it clearly is not, and parse the calls with the template's own tool format at the end.

LLaMA-Factory refuses to stream when tools are given (its #6063); here streaming and non-streaming answers agree,
because both end in `Template.extract_tool` on the same text. Pure: no Ray.
"""

from __future__ import annotations

from collections.abc import Callable

from lf_ray.data.tool_formats import FunctionCall

TOOL_CALL_OPENERS: dict[str, tuple[str, ...]] = {
    "default": ("Action:",),
    "qwen": ("<tool_call>",),
    "ling": ("<tool_call>",),
    "qwen3_5": ("<tool_call>",),
    "glm4_moe": ("<tool_call>",),
    "llama3": ("{", "["),
    "mistral": ("[", "{"),
    "minimax1": ("<tool_calls>",),
    "minimax2": ("<minimax:tool_call>", "<invoke "),
    "seed_oss": ("<seed:tool_call>",),
    "gemma4": ("<|tool_call>", "<|tool>"),  # the gemma4 templates wrap calls in <|tool> ... <tool|>
    "lfm2": ("<|tool_call_start|>",),
}
"""How a reply that is a tool call starts, per tool format (after leading whitespace). glm4 has none (a call opens
with the function's name): its replies stream as text and calls are still parsed at the end."""

_TAGGED_CALL = ("<tool_call>", "</tool_call>")
TOOL_CALL_TOKENS: dict[str, tuple[str, ...]] = {
    "qwen": _TAGGED_CALL,
    "ling": _TAGGED_CALL,
    "qwen3_5": _TAGGED_CALL,
    "glm4_moe": (*_TAGGED_CALL, "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"),
    "minimax1": ("<tool_calls>", "</tool_calls>"),
    "minimax2": ("<minimax:tool_call>", "</minimax:tool_call>"),
    "seed_oss": ("<seed:tool_call>", "</seed:tool_call>"),
    "gemma4": ("<|tool_call>", "<tool_call|>", '<|"|>'),
    "lfm2": ("<|tool_call_start|>", "<|tool_call_end|>"),
}
"""Tags the parser needs to see: kept in the text even where a tokenizer registers them as special tokens."""

Extractor = Callable[[str], "str | list[FunctionCall]"]


class ChoiceText:
    """One choice's growing text. `feed` returns what may be streamed as content now; `finish` returns the
    rest of the content and the parsed tool calls (empty when the reply is plain text)."""

    def __init__(self, extract: Extractor | None = None, openers: tuple[str, ...] = ()) -> None:
        self.extract = extract
        self.openers = openers
        self.text = ""
        self.streamed = 0
        self.is_content = extract is None

    def feed(self, delta: str) -> str:
        self.text += delta
        if not self.is_content and not self._may_be_tool_call():
            self.is_content = True
        if not self.is_content:
            return ""
        out = self.text[self.streamed :]
        self.streamed = len(self.text)
        return out

    def _may_be_tool_call(self) -> bool:
        head = self.text.lstrip()
        return not head or any(opener.startswith(head) or head.startswith(opener) for opener in self.openers)

    def finish(self) -> tuple[str, list[FunctionCall]]:
        calls = self.extract(self.text) if self.extract is not None else self.text
        rest = self.text[self.streamed :]
        self.streamed = len(self.text)
        if isinstance(calls, list) and calls:
            return ("" if not self.is_content else rest), calls
        return rest, []
