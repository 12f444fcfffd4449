"""The dataset registry: `dataset_info.json` entries in LLaMA-Factory's schema, as `DatasetAttr`s."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Literal

from lf_ray import storage
from lf_ray.constants import BUILTIN_DATASET_DIR, DEMO_DATA_DIR
from lf_ray.errors import DataError
from lf_ray.stages import STAGES

INFO_FILE = "dataset_info.json"
Formatting = Literal["alpaca", "sharegpt", "openai"]
_SOURCE_KEYS = {"hf_hub_url": "hf_hub", "ms_hub_url": "ms_hub", "om_hub_url": "om_hub", "script_url": "script"}
_FILE_KEYS = ("cloud_file_name", "file_name")
"""LLaMA-Factory's `cloud_file_name` (an s3:// or gs:// URI) and `file_name` (a path under dataset_dir, or a URI)."""


@dataclass
class DatasetAttr:
    """One dataset: where it lives, its format, and which of its columns / tags mean what."""

    name: str
    load_from: Literal["file", "hf_hub", "ms_hub", "om_hub", "script"] = "file"
    dataset_name: str = ""  # file name (or URI), hub id or script path
    formatting: Formatting = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    num_samples: int | None = None
    # columns
    system: str | None = None
    tools: str | None = None
    images: str | None = None
    videos: str | None = None
    audios: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: str | None = None
    # alpaca columns
    prompt: str | None = "instruction"
    query: str | None = "input"
    response: str | None = "output"
    history: str | None = None
    # sharegpt / openai columns and tags
    messages: str | None = "conversations"
    role_tag: str | None = "from"
    content_tag: str | None = "value"
    user_tag: str | None = "human"
    assistant_tag: str | None = "gpt"
    observation_tag: str | None = "observation"
    function_tag: str | None = "function_call"
    system_tag: str | None = "system"
    explicit_columns: tuple[str, ...] = ()  # the roles dataset_info.json maps by name (must exist in the file)

    def column_names(self) -> dict[str, str]:
        """Role of each column this dataset reads → the column's name in the file."""
        roles = ["system", "tools", "chosen", "rejected", "kto_tag"]
        roles += ["prompt", "query", "response", "history"] if self.formatting == "alpaca" else ["messages"]
        return {role: getattr(self, role) for role in roles if getattr(self, role)}


_COLUMN_KEYS = {
    "system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag",
    "prompt", "query", "response", "history", "messages",
}  # fmt: skip
_TAG_KEYS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}
_ENTRY_KEYS = {*_SOURCE_KEYS, *_FILE_KEYS, "formatting", "ranking", "subset", "split", "folder", "num_samples"}
_ENTRY_KEYS |= {"columns", "tags"}


def resolve_dataset_dir(dataset_dir: str) -> str:
    """`builtin` means the demo datasets shipped with lf-ray; anything else is a directory path or a URI."""
    return str(DEMO_DATA_DIR) if dataset_dir == BUILTIN_DATASET_DIR else storage.resolve(dataset_dir)


def dataset_location(attr: DatasetAttr, dataset_dir: str) -> str:
    """Where a file dataset lives: its own URI, or its `file_name` under `dataset_dir`."""
    if storage.is_uri(attr.dataset_name):
        return attr.dataset_name
    return storage.join(resolve_dataset_dir(dataset_dir), attr.dataset_name)


def load_dataset_info(dataset_dir: str) -> dict[str, Any]:
    info_path = storage.join(resolve_dataset_dir(dataset_dir), INFO_FILE)
    if not storage.is_file(info_path):
        raise DataError(
            f"no {INFO_FILE} in dataset_dir `{dataset_dir}` (looked for {info_path}); point `dataset_dir` at the "
            f"folder holding your {INFO_FILE}, or use `dataset_dir: builtin` for the shipped demo datasets"
        )
    try:
        info = json.loads(storage.read_text(info_path))
    except json.JSONDecodeError as err:
        raise DataError(f"{info_path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(info, dict):
        raise DataError(f"{info_path} must hold a JSON object mapping dataset names to entries")
    return info


def get_dataset_attrs(names: list[str], dataset_dir: str) -> list[DatasetAttr]:
    info = load_dataset_info(dataset_dir)
    attrs = []
    for name in names:
        if name not in info:
            close = difflib.get_close_matches(name, info, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise DataError(
                f"dataset `{name}` is not in {storage.join(resolve_dataset_dir(dataset_dir), INFO_FILE)}{hint} "
                f"(it has: {', '.join(sorted(info))}); add an entry for it or fix the `dataset` key"
            )
        attrs.append(parse_entry(name, info[name], dataset_dir))
    return attrs


def parse_entry(name: str, entry: dict[str, Any], dataset_dir: str = "") -> DatasetAttr:
    where = f"{INFO_FILE} entry `{name}`" + (f" in `{dataset_dir}`" if dataset_dir else "")
    if not isinstance(entry, dict):
        raise DataError(f"{where} must be an object with `file_name` (or `hf_hub_url`), got {entry!r}")
    _reject_unknown(entry, _ENTRY_KEYS, where)
    attr = DatasetAttr(name=name)
    attr.load_from, attr.dataset_name = _data_source(entry, where)  # type: ignore[assignment]
    for key in ("formatting", "ranking", "subset", "split", "folder", "num_samples"):
        if key in entry:
            setattr(attr, key, entry[key])
    if attr.formatting not in ("alpaca", "sharegpt", "openai"):
        raise DataError(f"{where}: formatting `{attr.formatting}` is not one of alpaca, sharegpt, openai")
    if attr.formatting == "openai":  # OpenAI chat messages: sharegpt with OpenAI's tags
        attr.messages, attr.role_tag, attr.content_tag = "messages", "role", "content"
        attr.user_tag, attr.assistant_tag, attr.observation_tag = "user", "assistant", "tool"
        attr.function_tag, attr.system_tag = "function", "system"
    # As in LLaMA-Factory, a `columns` (or `tags`) object replaces all defaults: unnamed ones become None.
    for group, keys in (("columns", _COLUMN_KEYS), ("tags", _TAG_KEYS)):
        if group in entry:
            if not isinstance(entry[group], dict):
                raise DataError(f"{where}: `{group}` must be an object mapping roles to names, got {entry[group]!r}")
            _reject_unknown(entry[group], keys, f"{where} `{group}`")
            for key in keys:
                setattr(attr, key, entry[group].get(key))
    attr.explicit_columns = tuple(entry.get("columns", {}))
    media = [f"`{key}: {getattr(attr, key)}`" for key in ("images", "videos", "audios") if getattr(attr, key)]
    if media:
        raise DataError(
            f"{where} maps media columns ({', '.join(media)}): lf-ray trains text-only models for now, and would "
            "otherwise train on the text with literal <image> / <video> / <audio> placeholders. Fix: use a text "
            "dataset, or remove the media columns from the entry"
        )
    return attr


def _data_source(entry: dict[str, Any], where: str) -> tuple[str, str]:
    """(load_from, dataset_name) of an entry: a hub / script source, else a file (a path or a URI)."""
    source = next((key for key in _SOURCE_KEYS if key in entry), None)
    if source:
        return _SOURCE_KEYS[source], entry[source]
    file_key = next((key for key in _FILE_KEYS if key in entry), None)
    if file_key is None:
        raise DataError(
            f"{where} names no data: add `file_name` (a file or folder under dataset_dir, or a URI), "
            "`cloud_file_name` (an s3:// or gs:// URI) or `hf_hub_url`"
        )
    name = entry[file_key]
    if storage.is_uri(name):
        storage.resolve(name)  # an unknown scheme fails here, naming the URI
    elif file_key == "cloud_file_name":
        raise DataError(
            f"{where}: `cloud_file_name: {name}` is not a URI; give s3://bucket/path or gs://bucket/path, "
            "or use `file_name` for a file under dataset_dir"
        )
    return "file", name


def _reject_unknown(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise DataError(f"unknown key `{key}` in {where}; {hint}allowed: {', '.join(sorted(allowed))}")


def check_ranking(attr: DatasetAttr, stage: str) -> None:
    """A ranking dataset (chosen / rejected) feeds the stages that compare two answers (rm, dpo) and only those, as
    LLaMA-Factory enforces ("The dataset is not applicable in the current training stage")."""
    pairwise = STAGES[stage].processor == "pairwise"
    if attr.ranking == pairwise:
        return
    if pairwise:
        need = f"`stage: {stage}` compares a chosen and a rejected answer, but dataset `{attr.name}` is not a ranking"
        fix = 'use a dataset with `"ranking": true` and chosen / rejected columns'
    else:
        need = (
            f"dataset `{attr.name}` is a ranking dataset (chosen / rejected), but `stage: {stage}` trains on one answer"
        )
        fix = "use it with `stage: rm` or `stage: dpo`, or give this stage a dataset without `ranking`"
    raise DataError(f"{need} dataset (`ranking` in dataset_info.json); {fix}")
