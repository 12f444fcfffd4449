"""Format converters: alpaca / sharegpt / openai rows → one canonical form.

Canonical row (LLaMA-Factory's aligned columns): `_prompt` (messages up to the answer), `_response`
(one answer; two for pairwise [chosen, rejected] and for kto [desired, undesired] with one empty),
`_system`, `_tools` (JSON text), `_origin` (file and row, for messages) and `_drop_reason` (None,
or why the row cannot be used: such rows are counted and reported, never silently lost).
"""

from __future__ import annotations

import json
from typing import Any

from lf_ray.data.registry import DatasetAttr
from lf_ray.errors import DataError

Message = dict[str, str]
Row = dict[str, Any]
USER, ASSISTANT, OBSERVATION, FUNCTION, SYSTEM = "user", "assistant", "observation", "function", "system"


def canonical_row(
    prompt: list[Message],
    response: list[Message],
    system: str = "",
    tools: str = "",
    origin: str = "",
    drop_reason: str | None = None,
) -> Row:
    return {
        "_prompt": prompt,
        "_response": response,
        "_system": system or "",
        "_tools": tools or "",
        "_origin": origin,
        "_drop_reason": drop_reason,
    }


def check_columns(attr: DatasetAttr, rows: list[Row], source: str) -> None:
    """A column the registry names must exist in the file: a wrong mapping fails loudly, up front."""
    if attr.formatting != "alpaca" and not attr.messages:
        raise DataError(
            f"dataset `{attr.name}` ({source}): its `columns` in dataset_info.json does not name `messages` "
            '(a `columns` object replaces every default); add "messages": "<the conversation column>"'
        )
    present = {key for row in rows[:1000] for key in row}
    required = set(attr.explicit_columns) | {"prompt" if attr.formatting == "alpaca" else "messages"}
    for role, column in attr.column_names().items():
        if role in required and column not in present:
            raise DataError(
                f"dataset `{attr.name}` ({source}): column `{column}` (its `{role}` column) is not in the data; "
                f"the rows have: {', '.join(sorted(present)) or 'no columns'}. Fix `columns` in dataset_info.json"
            )


def convert_rows(attr: DatasetAttr, rows: list[Row], source: str) -> list[Row]:
    if not rows:
        raise DataError(f"dataset `{attr.name}` ({source}) has no rows; check the file")
    check_columns(attr, rows, source)
    convert = convert_alpaca if attr.formatting == "alpaca" else convert_sharegpt
    return [convert(attr, row, f"{source} row {index}") for index, row in enumerate(rows, start=1)]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _kto_response(answer: Message, desired: bool) -> list[Message]:
    empty = {"role": ASSISTANT, "content": ""}
    return [answer, empty] if desired else [empty, answer]


def _check_text_columns(row: Row, columns: tuple[str | None, ...], origin: str) -> None:
    """A prompt or system column holds text (or nothing): a list, a number or NaN there is a broken row, refused
    with its place instead of being turned into text (LLaMA-Factory's Arrow reader refuses a mixed column too)."""
    for column in columns:
        value = row.get(column) if column else None
        if value is not None and not isinstance(value, str):
            raise DataError(
                f"{origin}: column `{column}` holds {type(value).__name__} {json.dumps(value)[:80]}, not text; "
                "every row's prompt and system columns must be strings (or null): fix that row"
            )


def convert_alpaca(attr: DatasetAttr, row: Row, origin: str) -> Row:
    _check_text_columns(row, (attr.prompt, attr.query, attr.system), origin)
    prompt: list[Message] = []
    history = row.get(attr.history) if attr.history else None
    if isinstance(history, list):
        for turn in history:
            if not (isinstance(turn, list | tuple) and len(turn) == 2):
                return canonical_row([], [], origin=origin, drop_reason="history turn is not a [query, answer] pair")
            prompt += [{"role": USER, "content": _text(turn[0])}, {"role": ASSISTANT, "content": _text(turn[1])}]
    query = [_text(row.get(column)) for column in (attr.prompt, attr.query) if column and row.get(column)]
    prompt.append({"role": USER, "content": "\n".join(query)})

    kto_tag = row.get(attr.kto_tag) if attr.kto_tag else None
    chosen = row.get(attr.chosen) if attr.chosen else None
    rejected = row.get(attr.rejected) if attr.rejected else None
    answer = row.get(attr.response) if attr.response else None
    if isinstance(kto_tag, bool):
        response = _kto_response({"role": ASSISTANT, "content": _text(answer)}, kto_tag)
    elif attr.ranking and isinstance(chosen, str) and isinstance(rejected, str):
        response = [{"role": ASSISTANT, "content": chosen}, {"role": ASSISTANT, "content": rejected}]
    elif isinstance(answer, str):
        response = [{"role": ASSISTANT, "content": answer}]
    else:  # unsupervised (pretraining text, prediction prompts)
        response = []
    return canonical_row(prompt, response, _text(row.get(attr.system)), _text(row.get(attr.tools)), origin)


def _sharegpt_roles(attr: DatasetAttr) -> tuple[dict[str, str], tuple[set[str], set[str]]]:
    roles = {
        attr.user_tag: USER,
        attr.assistant_tag: ASSISTANT,
        attr.observation_tag: OBSERVATION,
        attr.function_tag: FUNCTION,
        attr.system_tag: SYSTEM,
    }
    asking = {tag for tag in (attr.user_tag, attr.observation_tag) if tag}
    answering = {tag for tag in (attr.assistant_tag, attr.function_tag) if tag}
    return {tag: role for tag, role in roles.items() if tag}, (asking, answering)


class _BadToolCall(ValueError):
    pass


def _openai_call(call: Row) -> dict[str, Any]:
    function = call.get("function", call)
    arguments = function.get("arguments") or {}
    try:
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        raise _BadToolCall(f"tool call `{function.get('name')}` has arguments that are not valid JSON") from None
    if "name" not in function or not isinstance(arguments, dict):
        raise _BadToolCall(f"tool call {call!r} needs a `name` and an object of `arguments`")
    return {"name": function["name"], "arguments": arguments}


def _openai_messages(messages: list[Row]) -> list[Row]:
    """OpenAI chat → sharegpt-like turns: `tool_calls` become a function message, consecutive tool results
    (parallel calls) merge into one observation, as LLaMA-Factory does."""
    turns: list[Row] = []
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and calls:
            content = [_openai_call(call) for call in calls]
            message = {"role": "function", "content": json.dumps(content if len(content) > 1 else content[0])}
        if message.get("role") == "tool" and turns and turns[-1].get("role") == "tool":
            merged = turns[-1]["content"] + "\n</tool_response>\n<tool_response>\n" + _text(message.get("content"))
            turns[-1] = {"role": "tool", "content": merged}
            continue
        turns.append(message)
    return turns


def convert_sharegpt(attr: DatasetAttr, row: Row, origin: str) -> Row:
    messages = row.get(attr.messages) or []
    if not isinstance(messages, list):
        return canonical_row([], [], origin=origin, drop_reason=f"`{attr.messages}` is not a list of messages")
    if attr.formatting == "openai":
        try:
            messages = _openai_messages(messages)
        except _BadToolCall as err:
            return canonical_row([], [], origin=origin, drop_reason=str(err))
    role_of, accepted = _sharegpt_roles(attr)
    role_tag, content_tag = attr.role_tag or "from", attr.content_tag or "value"
    system = _text(row.get(attr.system)) if attr.system else ""
    if messages and attr.system_tag and messages[0].get(role_tag) == attr.system_tag:
        system, messages = _text(messages[0].get(content_tag)), messages[1:]

    aligned: list[Message] = []
    for turn, message in enumerate(messages):
        tag = message.get(role_tag)
        if tag not in accepted[turn % 2]:
            expected = " or ".join(sorted(accepted[turn % 2]))
            reason = f"message {turn} has role `{tag}` where {expected} must come (turns must alternate)"
            return canonical_row([], [], origin=origin, drop_reason=reason)
        aligned.append({"role": role_of[tag], "content": _text(message.get(content_tag))})

    expects_odd = attr.ranking  # pairwise rows end with a question; the answers are chosen / rejected
    if len(aligned) % 2 != (1 if expects_odd else 0):
        reason = f"{len(aligned)} messages: a conversation needs user/assistant pairs" + (
            " ending with a user turn (pairwise)" if expects_odd else ""
        )
        return canonical_row([], [], origin=origin, drop_reason=reason)

    tools = _text(row.get(attr.tools)) if attr.tools else ""
    kto_tag = row.get(attr.kto_tag) if attr.kto_tag else None
    if isinstance(kto_tag, bool):
        return canonical_row(aligned[:-1], _kto_response(aligned[-1], kto_tag), system, tools, origin)
    if attr.ranking:
        return _sharegpt_pairwise(attr, row, aligned, system, tools, origin)
    return canonical_row(aligned[:-1], aligned[-1:], system, tools, origin)


def _sharegpt_pairwise(attr: DatasetAttr, row: Row, prompt: list[Message], system: str, tools: str, origin: str) -> Row:
    role_of, (_, answering) = _sharegpt_roles(attr)
    role_tag, content_tag = attr.role_tag or "from", attr.content_tag or "value"
    answers = [row.get(attr.chosen) if attr.chosen else None, row.get(attr.rejected) if attr.rejected else None]
    if not all(isinstance(answer, dict) and answer.get(role_tag) in answering for answer in answers):
        reason = f"chosen / rejected must be messages with role {' or '.join(sorted(answering))}"
        return canonical_row([], [], origin=origin, drop_reason=reason)
    response = [{"role": role_of[a[role_tag]], "content": _text(a.get(content_tag))} for a in answers]
    return canonical_row(prompt, response, system, tools, origin)
