"""Training keys: the fields of transformers' `Seq2SeqTrainingArguments`, plus a few LLaMA-Factory keys.

The config keeps training values as a plain dict (the train step builds the real object on a worker).
Their names, types, defaults and help come from the installed transformers. Importing it costs seconds
(it pulls in torch), so it happens lazily inside `training_key_table()` and the result is cached in
memory and on disk (under `LF_RAY_HOME`, keyed by the transformers version and file time).

`LF_TRAINING_KEYS` lists keys that LLaMA-Factory YAMLs use but transformers 5 does not have; lf-ray owns
them and the train step maps each one (see its help). A transformers version that has the key wins.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.metadata
import importlib.util
import json
import os
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

from lf_ray.config.coercion import ValueSpec, spec_from_annotation
from lf_ray.constants import lf_ray_home

TrainingKeyTable = dict[str, tuple[ValueSpec, Any, str]]
"""key → (accepted value spec, default, help)."""

_BOOL = ValueSpec(frozenset({"bool"}))
_FLOAT = ValueSpec(frozenset({"int", "float"}))
_INT = ValueSpec(frozenset({"int"}))
_STR = ValueSpec(frozenset({"str"}))
_OPT_STR = ValueSpec(frozenset({"str", "none"}))

LF_TRAINING_KEYS: TrainingKeyTable = {
    "overwrite_output_dir": (
        _BOOL,
        False,
        "Overwrite the content of the output directory. When false and `output_dir` already holds a "
        "checkpoint, training resumes from the last one (LLaMA-Factory's behaviour).",
    ),
    "warmup_ratio": (
        _FLOAT,
        0.0,
        "Linear warmup over warmup_ratio fraction of total steps. transformers 5 dropped this key: "
        "lf-ray passes it on as `warmup_steps` (where a value below 1 is a ratio).",
    ),
    "logging_dir": (
        _OPT_STR,
        None,
        "TensorBoard log directory. transformers 5 dropped this key: lf-ray sets TENSORBOARD_LOGGING_DIR.",
    ),
    "save_safetensors": (
        _BOOL,
        True,
        "Save state dicts as safetensors. transformers 5 always does, so only `true` is accepted.",
    ),
    "fp8": (
        _BOOL,
        False,
        "Enable FP8 mixed precision training via HuggingFace Accelerate. "
        "Requires PyTorch 2.7+ and Hopper architecture GPUs.",
    ),
    "fp8_backend": (
        _STR,
        "auto",
        "FP8 backend to use ('auto', 'torchao', 'te', 'msamp'). 'auto' selects best available backend.",
    ),
    "fp8_enable_fsdp_float8_all_gather": (
        _BOOL,
        False,
        "Enable FP8 optimizations for FSDP2 all-gather operations.",
    ),
    # LLaMA-Factory 0.9.5's profiling keys (`tracking.profiler`)
    "enable_torch_profiler": (_BOOL, False, "Whether to enable torch profiler for collecting performance traces."),
    "profiler_output_dir": (
        _OPT_STR,
        None,
        "Directory to write profiler traces, one rank_<N> folder per rank. Defaults to <output_dir>/profiler.",
    ),
    "profiler_wait_steps": (_INT, 1, "Number of steps to skip at the start of each profiling cycle."),
    "profiler_warmup_steps": (_INT, 1, "Number of profiler warm-up steps per cycle."),
    "profiler_active_steps": (_INT, 1, "Number of steps to actively record per cycle."),
    "profiler_repeat": (_INT, 1, "Number of profiling cycles. Set to 0 for continuous profiling."),
    "profiler_record_shapes": (_BOOL, True, "Whether to record tensor shapes during profiling."),
    "profiler_profile_memory": (_BOOL, True, "Whether to profile memory usage."),
    "profiler_with_stack": (_BOOL, True, "Whether to record stack traces during profiling."),
    "profile_modules": (
        _OPT_STR,
        None,
        "Comma-separated fnmatch patterns of modules whose forward / backward time is printed at each logging step "
        "(e.g. `*.layers.0.self_attn,*.layers.0.mlp`).",
    ),
}

# Training keys that transformers renamed; the loader maps the old name onto the new one.
TRAINING_KEY_ALIASES: dict[str, str] = {"evaluation_strategy": "eval_strategy"}


@lru_cache(maxsize=1)
def training_key_table() -> TrainingKeyTable:
    """Every accepted training key: transformers' `Seq2SeqTrainingArguments` fields, then `LF_TRAINING_KEYS`."""
    cache_file = _cache_file()
    table = _read_cache(cache_file) if cache_file else None
    if table is None:
        table = _table_from_transformers()
        if cache_file:
            _write_cache(cache_file, table)
    for key, entry in LF_TRAINING_KEYS.items():
        table.setdefault(key, entry)
    return table


def _table_from_transformers() -> TrainingKeyTable:
    from transformers import Seq2SeqTrainingArguments  # lazy: seconds to import (torch, peft)

    try:
        hints = typing.get_type_hints(Seq2SeqTrainingArguments)
    except Exception:  # an unresolvable annotation: fall back to the raw ones
        hints = {}
    table: TrainingKeyTable = {}
    for f in dataclasses.fields(Seq2SeqTrainingArguments):
        if not f.init or f.name.startswith("_"):
            continue
        annotation = hints.get(f.name, f.type)
        spec = spec_from_annotation(annotation) if not isinstance(annotation, str) else ValueSpec(frozenset({"any"}))
        table[f.name] = (spec, _json_safe(_field_default(f)), str(f.metadata.get("help", "")))
    return table


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _json_safe(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


TABLE_FORMAT = "v2"
"""Part of the cache file's name: a new one when what the table records changes (v2: enum choices)."""


def _cache_file() -> Path | None:
    """`<LF_RAY_HOME>/config/seq2seq_training_args-<version>-<mtime>.json`, or None if unknown."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations))) / "training_args.py"
    try:
        version = importlib.metadata.version("transformers")
        stamp = source.stat().st_mtime_ns
    except (importlib.metadata.PackageNotFoundError, OSError):
        return None
    return lf_ray_home() / "config" / f"seq2seq_training_args-{TABLE_FORMAT}-{version}-{stamp}.json"


def _read_cache(path: Path) -> TrainingKeyTable | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    table: TrainingKeyTable = {}
    for key, entry in raw.items():
        choices = tuple(entry["choices"]) if entry["choices"] is not None else None
        spec = ValueSpec(frozenset(entry["kinds"]), choices, entry["item_kind"])
        table[key] = (spec, entry["default"], entry["help"])
    return table


def _write_cache(path: Path, table: TrainingKeyTable) -> None:
    raw = {
        key: {
            "kinds": sorted(spec.kinds),
            "choices": list(spec.choices) if spec.choices is not None else None,
            "item_kind": spec.item_kind,
            "default": default,
            "help": help_text,
        }
        for key, (spec, default, help_text) in table.items()
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(raw, indent=1), encoding="utf-8")
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # the cache is an optimisation; a read-only home just means importing again next time
