"""The board's words in five languages, read from locales.yaml (data, not code)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

LOCALES_FILE = Path(__file__).with_name("locales.yaml")
DEFAULT_LANGUAGE = "en"


@functools.cache
def locale_table() -> dict[str, Any]:
    return yaml.safe_load(LOCALES_FILE.read_text(encoding="utf-8"))


def languages() -> list[str]:
    return list(locale_table()["languages"])


def element_text(elem_id: str, lang: str) -> dict[str, str]:
    """`{"label": ..., "info": ...}` of an element in `lang` (English where a language lacks the entry)."""
    entry = locale_table()["elements"].get(elem_id)
    if entry is None:
        raise KeyError(f"no locale entry for element `{elem_id}` in {LOCALES_FILE}; add one")
    return dict(entry.get(lang) or entry[DEFAULT_LANGUAGE])


def label(elem_id: str, lang: str) -> str:
    return element_text(elem_id, lang)["label"]


def message(key: str, lang: str, /, **values: Any) -> str:
    """A message in `lang` with its {names} filled in."""
    entry = locale_table()["messages"].get(key)
    if entry is None:
        raise KeyError(f"no locale message `{key}` in {LOCALES_FILE}; add one")
    return str(entry.get(lang) or entry[DEFAULT_LANGUAGE]).format(**values)
