"""The key table: every config key, the group it belongs to, the values it accepts, its default and help.

Groups are `model`, `data`, `finetuning`, `generating`, `ray`, `eval`, `tune`, `serve` (the argument dataclasses)
and `training` (transformers' `Seq2SeqTrainingArguments` fields plus `LF_TRAINING_KEYS`). A key lives in exactly one
group; building the table fails loudly if two groups claim the same name.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lf_ray.config.coercion import ValueSpec, spec_from_annotation
from lf_ray.config.data_args import DataArguments
from lf_ray.config.eval_args import EvalArguments
from lf_ray.config.finetuning_args import FinetuningArguments
from lf_ray.config.generating_args import GeneratingArguments
from lf_ray.config.model_args import MODEL_KEY_ALIASES, ModelArguments
from lf_ray.config.ray_args import RAY_KEY_ALIASES, RayArguments
from lf_ray.config.serve_args import ServeArguments
from lf_ray.config.training_args import TRAINING_KEY_ALIASES, training_key_table
from lf_ray.config.tune_args import TuneArguments
from lf_ray.errors import ConfigError

GROUP_CLASSES: dict[str, type] = {
    "model": ModelArguments,
    "data": DataArguments,
    "finetuning": FinetuningArguments,
    "generating": GeneratingArguments,
    "ray": RayArguments,
    "eval": EvalArguments,
    "tune": TuneArguments,
    "serve": ServeArguments,
}
GROUPS: tuple[str, ...] = (*GROUP_CLASSES, "training")

KEY_ALIASES: dict[str, str] = {**MODEL_KEY_ALIASES, **RAY_KEY_ALIASES, **TRAINING_KEY_ALIASES}
"""Older LLaMA-Factory / transformers names → the key lf-ray stores them under."""


@dataclass(frozen=True)
class KeySpec:
    """One config key: its group, the values it accepts, its default and its help text."""

    name: str
    group: str
    value: ValueSpec
    default: Any
    help: str


@lru_cache(maxsize=1)
def dataclass_keys() -> dict[str, KeySpec]:
    """Keys of the argument dataclasses (no transformers import)."""
    table: dict[str, KeySpec] = {}
    for group, cls in GROUP_CLASSES.items():
        hints = typing.get_type_hints(cls)
        defaults = cls()
        for f in dataclasses.fields(cls):
            spec = KeySpec(
                f.name, group, spec_from_annotation(hints[f.name]), getattr(defaults, f.name), f.metadata["help"]
            )
            _add(table, spec)
    return table


@lru_cache(maxsize=1)
def all_keys() -> dict[str, KeySpec]:
    """Every key of every group, training keys included (imports transformers the first time)."""
    table = dict(dataclass_keys())
    for name, (value, default, help_text) in training_key_table().items():
        _add(table, KeySpec(name, "training", value, default, help_text))
    return table


def _add(table: dict[str, KeySpec], spec: KeySpec) -> None:
    other = table.get(spec.name)
    if other is not None:
        raise RuntimeError(f"config key `{spec.name}` is declared in both `{other.group}` and `{spec.group}`")
    table[spec.name] = spec


def canonical_key(key: str) -> str:
    """The stored name of `key` (itself, or the field an alias maps to)."""
    return KEY_ALIASES.get(key, key)


def group_of(key: str) -> str:
    """The group (`model`, `data`, `finetuning`, `generating`, `ray`, `eval`, `training`) that owns `key`."""
    name = canonical_key(key)
    spec = dataclass_keys().get(name) or all_keys().get(name)
    if spec is None:
        raise ConfigError(f"unknown key `{key}`{suggest_key(key)}")
    return spec.group


def suggest_key(key: str) -> str:
    """`; did you mean `x`?` for the closest valid key or alias, or a hint when nothing is close."""
    candidates = [*all_keys(), *KEY_ALIASES]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    return "; it is not an argument of LLaMA-Factory, transformers or lf-ray (check the spelling, or remove it)"


def field_help() -> dict[str, tuple[str, str, Any]]:
    """key → (group, help, default) for every key, in group order; the CLI prints it as `--help`."""
    table = all_keys()
    ordered = sorted(table.values(), key=lambda spec: GROUPS.index(spec.group))
    return {spec.name: (spec.group, spec.help, spec.default) for spec in ordered}
