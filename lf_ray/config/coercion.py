"""Turn a config value (from YAML, JSON or a `key=value` override) into the type its field declares.

A field's annotation is boiled down to a `ValueSpec` (which plain kinds it accepts, the allowed choices of
a `Literal`, the item kind of a list). `coerce_value` then checks a value against it and converts the
strings that YAML 1.1 leaves unparsed (`1e-4`, `"8"`, `"true"`), JSON objects written as strings and
comma-separated lists, the way LLaMA-Factory's parser (OmegaConf + HfArgumentParser) accepts them.
"""

from __future__ import annotations

import enum
import json
import pathlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

Kind = Literal["none", "bool", "int", "float", "str", "list", "dict", "any"]
_SCALARS: dict[type, Kind] = {type(None): "none", bool: "bool", int: "int", float: "float", str: "str"}
_TRUE = {"true", "yes", "on"}
_FALSE = {"false", "no", "off"}
_NULL = {"null", "none", "~", ""}


class ValueMismatch(ValueError):
    """The value does not fit the spec; the loader adds the key and the file to the message."""


@dataclass(frozen=True)
class ValueSpec:
    """What a field accepts: plain kinds, the choices of a `Literal`/enum, and the kind of list items."""

    kinds: frozenset[str]
    choices: tuple[Any, ...] | None = None
    item_kind: str | None = None

    def describe(self) -> str:
        """Human words for the expected type, e.g. `float or null`, `one of: concat, interleave_under`."""
        if "any" in self.kinds:
            return "any value"
        parts: list[str] = []
        if self.choices is not None:
            parts.append("one of: " + ", ".join(str(c) for c in self.choices))
        for kind in ("bool", "int", "float", "str", "list", "dict"):
            if kind in self.kinds and not (kind == "str" and self.choices is not None):
                parts.append(f"list of {self.item_kind}" if kind == "list" and self.item_kind else kind)
        if "none" in self.kinds:
            parts.append("null")
        return " or ".join(parts)


def spec_from_annotation(annotation: Any) -> ValueSpec:
    """Reduce a (resolved) type annotation to a `ValueSpec`; unknown classes accept any value."""
    kinds: set[str] = set()
    choices: list[Any] = []
    free_str = False
    enum_choices = False
    item_kind: str | None = None
    for member in _union_members(annotation):
        origin = typing.get_origin(member)
        if member in _SCALARS:
            kinds.add(_SCALARS[member])
            free_str = free_str or member is str
        elif origin is Literal:
            for choice in typing.get_args(member):
                kinds.add(_SCALARS.get(type(choice), "any"))
                choices.append(choice)
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            kinds.add("str")
            choices.extend(item.value for item in member)
            enum_choices = True
        elif member is pathlib.Path:
            kinds.add("str")
            free_str = True
        elif member is list or origin is list:
            kinds.add("list")
            args = typing.get_args(member)
            item_kind = _SCALARS.get(args[0]) if args else None
        elif member is dict or origin is dict:
            kinds.add("dict")
        else:
            kinds.add("any")
    if enum_choices:  # `SchedulerType | str`: the str is the enum's spelling (transformers converts it), not free text
        free_str = False
    if free_str or not choices:
        return ValueSpec(frozenset(kinds), None, item_kind)
    return ValueSpec(frozenset(kinds), tuple(choices), item_kind)


def _union_members(annotation: Any) -> list[Any]:
    if annotation is Any or annotation is object:
        return [Any]
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        members: list[Any] = []
        for arg in typing.get_args(annotation):
            members.extend(_union_members(arg))
        return members
    return [annotation]


def coerce_value(value: Any, spec: ValueSpec) -> Any:
    """Return `value` converted to fit `spec`, or raise `ValueMismatch` saying what was expected."""
    if "any" in spec.kinds:
        return value
    if value is None:
        if "none" in spec.kinds:
            return None
    elif isinstance(value, str):
        return _coerce_str(value, spec)
    elif isinstance(value, bool):
        if "bool" in spec.kinds:
            return value
    elif isinstance(value, (int, float)):
        return _coerce_number(value, spec)
    elif isinstance(value, (list, tuple)):
        if "list" in spec.kinds:
            return [_coerce_item(item, spec.item_kind) for item in value]
    elif isinstance(value, dict) and "dict" in spec.kinds:
        return dict(value)
    raise ValueMismatch(f"expected {spec.describe()}")


def _coerce_number(value: int | float, spec: ValueSpec) -> Any:
    if spec.choices is not None and value in spec.choices:
        return value
    if isinstance(value, int) and ("int" in spec.kinds or "float" in spec.kinds):
        return value
    if isinstance(value, float):
        if "float" in spec.kinds:
            return value
        if "int" in spec.kinds and value.is_integer():
            return int(value)
    if "str" in spec.kinds and spec.choices is None:
        return str(value)  # e.g. `master_port: 29500` for a string field
    if "list" in spec.kinds:
        return [_coerce_item(value, spec.item_kind)]  # e.g. `interleave_probs: 1.0`
    raise ValueMismatch(f"expected {spec.describe()}")


def _coerce_str(text: str, spec: ValueSpec) -> Any:
    if spec.choices is not None and text in spec.choices:
        return text
    if "str" in spec.kinds and spec.choices is None:
        return text
    lowered = text.strip().lower()
    if "bool" in spec.kinds and lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    if "none" in spec.kinds and lowered in _NULL:
        return None
    number = _parse_number(text.strip(), spec)
    if number is not None:
        return number
    if "dict" in spec.kinds and text.lstrip().startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueMismatch(f"expected a JSON object; {err.msg} at column {err.colno}") from None
        if isinstance(parsed, dict):
            return parsed
    if "list" in spec.kinds:
        return [_coerce_item(item, spec.item_kind) for item in split_commas(text)]
    raise ValueMismatch(f"expected {spec.describe()}")


def _parse_number(text: str, spec: ValueSpec) -> int | float | None:
    if "int" in spec.kinds:
        try:
            return int(text)
        except ValueError:
            pass
    if "float" in spec.kinds:
        try:
            return float(text)
        except ValueError:
            pass
    return None


def _coerce_item(item: Any, item_kind: str | None) -> Any:
    if item_kind is None:
        return item
    if item_kind == "str" and isinstance(item, (str, int, float)) and not isinstance(item, bool):
        return str(item)
    if item_kind == "float" and isinstance(item, (int, float)) and not isinstance(item, bool):
        return float(item)
    if item_kind == "float" and isinstance(item, str):
        try:
            return float(item)
        except ValueError:
            pass
    raise ValueMismatch(f"expected a list of {item_kind}, got item {item!r}")


def split_commas(value: Any) -> Any:
    """LLaMA-Factory's comma lists: `"a, b"` → `["a", "b"]`; lists and None pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def parse_json_object(value: Any) -> Any:
    """A JSON object given as a string (`'{"GPU": 1}'`) → dict; anything else passes through."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return json.loads(value)
    return value
