"""`LfRayConfig` and `load_config`: a LLaMA-Factory-style flat YAML/JSON file → typed argument groups.

Sources merge as `base` (a pipeline's shared settings) < the file < `key=value` overrides. Each source is
checked on its own, so an error names where the bad key or value came from: unknown keys get the closest
valid key suggested, values are coerced to their field's type (`learning_rate=1e-4` → 0.0001,
`lora_target=q_proj,v_proj` → a list) or rejected with the type expected. Cross-field rules run later,
in `rules.validate_config`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lf_ray.config.coercion import ValueMismatch, coerce_value
from lf_ray.config.data_args import DataArguments
from lf_ray.config.eval_args import EvalArguments
from lf_ray.config.finetuning_args import FinetuningArguments
from lf_ray.config.generating_args import GeneratingArguments
from lf_ray.config.model_args import ModelArguments
from lf_ray.config.ray_args import RayArguments
from lf_ray.config.schema import GROUP_CLASSES, GROUPS, KEY_ALIASES, all_keys, group_of, suggest_key
from lf_ray.config.serve_args import ServeArguments
from lf_ray.config.tune_args import TuneArguments
from lf_ray.errors import ConfigError

OVERRIDES_LABEL = "command-line overrides"
BASE_LABEL = "base config"


@dataclass(eq=False)
class LfRayConfig:
    """A whole run's arguments, grouped like LLaMA-Factory's; `training` is a plain dict of the keys set.

    Two configs are equal when every key has the same effective value (a training key left out equals
    one set to transformers' default), so `load_config(dump(cfg)) == cfg`.
    """

    model: ModelArguments = field(default_factory=ModelArguments)
    data: DataArguments = field(default_factory=DataArguments)
    finetuning: FinetuningArguments = field(default_factory=FinetuningArguments)
    generating: GeneratingArguments = field(default_factory=GeneratingArguments)
    ray: RayArguments = field(default_factory=RayArguments)
    eval: EvalArguments = field(default_factory=EvalArguments)
    tune: TuneArguments = field(default_factory=TuneArguments)
    serve: ServeArguments = field(default_factory=ServeArguments)
    training: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False, repr=False)

    group_of = staticmethod(group_of)
    __hash__ = None  # mutable

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LfRayConfig):
            return NotImplemented
        return self.to_dict(non_default_only=True) == other.to_dict(non_default_only=True)

    def get(self, key: str) -> Any:
        """The value of any key, by its flat name; unset training keys give transformers' default."""
        group = group_of(key)
        name = KEY_ALIASES.get(key, key)
        if group == "training":
            return self.training[name] if name in self.training else all_keys()[name].default
        return getattr(getattr(self, group), name)

    def to_dict(self, non_default_only: bool = False) -> dict[str, Any]:
        """Flat LLaMA-Factory-style `key: value` dict; `non_default_only` keeps only values that differ
        from the defaults. Loading the result back gives an equal config."""
        return {key: value for section in self.sections(non_default_only).values() for key, value in section.items()}

    def sections(self, non_default_only: bool = False) -> dict[str, dict[str, Any]]:
        """`to_dict`, split by group (model, data, finetuning, generating, ray, eval, tune, serve, training)."""
        keys = all_keys()
        out: dict[str, dict[str, Any]] = {}
        for group in GROUP_CLASSES:
            args = getattr(self, group)
            out[group] = {
                f.name: getattr(args, f.name)
                for f in dataclasses.fields(args)
                if not (non_default_only and getattr(args, f.name) == keys[f.name].default)
            }
        training = {} if non_default_only else {k: s.default for k, s in keys.items() if s.group == "training"}
        for key, value in self.training.items():
            if not (non_default_only and value == keys[key].default):
                training[key] = value
        out["training"] = training
        return copy.deepcopy(out)  # callers may edit the dump without touching the config

    def to_yaml(self, non_default_only: bool = False) -> str:
        """The config as a YAML file in LLaMA-Factory's layout (`### model`, `### data`, ...)."""
        blocks = []
        for group, values in self.sections(non_default_only).items():
            if values:
                body = yaml.safe_dump(values, sort_keys=False, allow_unicode=True, default_flow_style=False)
                blocks.append(f"### {group}\n{body}")
        return "\n".join(blocks)


def load_config(
    path: str | os.PathLike | None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> LfRayConfig:
    """Read a `.yaml`/`.yml`/`.json` config, merge `base` < file < `key=value` overrides, and type it."""
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if base:
        sources.append((BASE_LABEL, base))
    if path is not None:
        sources.append((str(path), read_config_file(path)))
    texts: dict[str, str] = {}
    if overrides:
        sources.append((OVERRIDES_LABEL, parse_overrides(overrides, texts)))
    where = str(path) if path is not None else "the config"
    return load_layers(sources, where, source=str(path) if path is not None else None, texts=texts)


def load_layers(
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    where: str,
    *,
    source: str | None = None,
    texts: Mapping[str, str] | None = None,
) -> LfRayConfig:
    """Merge labelled `key: value` layers, later ones winning; an error names the layer a bad key came from
    (a pipeline passes its `defaults`, the inputs' keys and a step's `with`)."""
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for label, raw in layers:
        merged.update(_check_source(raw, label, problems, (texts or {}) if label == OVERRIDES_LABEL else {}))
    if problems:
        raise ConfigError(_join_problems(problems, where))
    return build_config(merged, source=source)


def build_config(values: Mapping[str, Any], source: str | None = None) -> LfRayConfig:
    """An `LfRayConfig` from already checked, canonical `key: value` pairs."""
    grouped: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for key, value in values.items():
        grouped[all_keys()[key].group][key] = value
    try:
        parts = {group: cls(**grouped[group]) for group, cls in GROUP_CLASSES.items()}
    except ValueError as err:  # e.g. a malformed JSON string in `vllm_config`
        raise ConfigError(f"invalid value in {source or 'the config'}: {err}") from None
    return LfRayConfig(**parts, training=grouped["training"], source=source)


def _check_source(raw: Mapping[str, Any], label: str, problems: list[str], texts: Mapping[str, str]) -> dict[str, Any]:
    """Canonical, coerced `key: value` pairs of one source; appends what is wrong to `problems`.

    `texts` holds the unparsed text of overrides: a string field given `key=Answer: briefly` (which YAML
    reads as a mapping) gets the text back.
    """
    keys = all_keys()
    checked: dict[str, Any] = {}
    for key, value in _resolve_aliases(raw, label, problems).items():
        spec = keys.get(key)
        if spec is None:
            problems.append(f"unknown key `{key}` in {label}{suggest_key(key)}")
            continue
        try:
            checked[key] = coerce_value(value, spec.value)
        except ValueMismatch as err:
            if key in texts and isinstance(value, (dict, list)) and "str" in spec.value.kinds:
                checked[key] = texts[key]
                continue
            problems.append(f"invalid value for `{key}` in {label}: got {value!r} ({type(value).__name__}); {err}")
    return checked


def _resolve_aliases(raw: Mapping[str, Any], label: str, problems: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        name = KEY_ALIASES.get(key, key)
        if name != key and name in raw and raw[name] != value:
            problems.append(
                f"`{key}` ({value!r}) and `{name}` ({raw[name]!r}) in {label} disagree: `{key}` is an older "
                f"name of `{name}`; keep only `{name}`"
            )
            continue
        if name not in out or name == key:
            out[name] = value
    return out


def _join_problems(problems: list[str], where: str) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems in {where}:\n" + "\n".join(f"  - {p}" for p in problems)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The top-level mapping of a YAML or JSON config file; every failure is a `ConfigError` naming it."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"config file not found: {file} (resolved from {Path.cwd()}); check the path or create the file"
        )
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"unsupported config file type `{file.suffix}` for {file}; use .yaml, .yml or .json")
    text = file.read_text(encoding="utf-8")
    data = _parse_json(text, file) if suffix == ".json" else _parse_yaml(text, file)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file} must hold a mapping of `key: value` pairs at the top level, got a {type(data).__name__}; "
            "write one argument per line, e.g. `learning_rate: 1.0e-4`"
        )
    return data


def _parse_json(text: str, file: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{file} line {err.lineno}, column {err.colno}: invalid JSON ({err.msg}); fix the syntax there"
        ) from None


def _parse_yaml(text: str, file: Path) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = err.problem or err.context or "syntax error"
        raise ConfigError(
            f"{file}{where}: invalid YAML ({problem}); fix the syntax there "
            "(indentation, a missing `:` or an unclosed quote)"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: invalid YAML ({err}); fix the syntax") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key written twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key `{key}`; keep only one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_overrides(overrides: Sequence[str], texts: dict[str, str] | None = None) -> dict[str, Any]:
    """`["learning_rate=1e-4", "--bf16=false"]` → `{"learning_rate": "1e-4", "bf16": False}` (YAML values).

    When `texts` is given it receives each key's unparsed value text.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise ConfigError(f"override `{item}` must look like key=value, e.g. learning_rate=1e-4")
        if texts is not None:
            texts[key] = text
        try:
            parsed[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed[key] = text  # free text such as `default_system=Answer: briefly`
    return parsed
