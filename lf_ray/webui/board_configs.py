"""Saved board arguments: named YAML files in one config folder, and the copy each launch leaves in its output
directory (so a run can be resumed with the form it was started from).

A saved file leaves out the volatile fields, as LLaMA Board does, so it can be reused for another model or
run. A name given in the browser can never reach outside the config folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lf_ray.artifacts import write_text
from lf_ray.errors import ConfigError

VOLATILE_FIELDS = frozenset({"top.lang", "top.model_name_or_path", "train.output_dir", "train.config_path"})
"""Fields a saved config leaves out: they belong to one model or one run."""

RUN_FORM_NAME = "lf_ray_board.yaml"
"""The whole form of a launch, written into its output directory."""


def config_file(config_dir: str | Path, name: str) -> Path:
    """`<config_dir>/<name>.yaml`, refusing names that would escape `config_dir` (`../x`, `/etc/x`, `a/b`)."""
    name = (name or "").strip()
    if not name:
        raise ConfigError("no config name given; type a name such as `my_lora` in the config path box")
    plain = name.removesuffix(".yaml").removesuffix(".yml")
    if Path(name).is_absolute() or "/" in name or "\\" in name or plain in ("", ".", ".."):
        raise ConfigError(
            f"config name `{name}` is not a plain file name; configs live in {config_dir}: use a name like "
            "`my_lora` without `/`, `..` or a leading `/`"
        )
    root = Path(config_dir).resolve()
    path = (root / f"{plain}.yaml").resolve()
    if path.parent != root:  # belt and braces: symlinks or odd names must still land in the folder
        raise ConfigError(f"config name `{name}` resolves outside {root}; use a plain file name")
    return path


SAVED_TABS = ("top.", "train.")
"""Save/Load arguments keep the top bar and the Train tab, as LLaMA Board's do."""


def saved_fields(state: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in state.items() if key.startswith(SAVED_TABS) and key not in VOLATILE_FIELDS}


def save_board_config(config_dir: str | Path, name: str, state: Mapping[str, Any]) -> Path:
    path = config_file(config_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(saved_fields(state), sort_keys=True, allow_unicode=True))
    return path


def load_board_config(config_dir: str | Path, name: str) -> dict[str, Any]:
    path = config_file(config_dir, name)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in Path(config_dir).glob("*.yaml"))) or "none yet"
        raise ConfigError(f"no saved config `{name}` in {config_dir} (saved: {known}); save one first")
    return read_form(path)


def read_form(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({err}); fix or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of board fields, got {type(data).__name__}")
    return {key: value for key, value in data.items() if key not in VOLATILE_FIELDS}


def save_run_form(output_dir: str | Path, state: Mapping[str, Any]) -> Path:
    """The whole form (volatile fields included) beside the run it launched."""
    path = Path(output_dir) / RUN_FORM_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, yaml.safe_dump(dict(state), sort_keys=True, allow_unicode=True))
    return path


def run_form(output_dir: str | Path | None) -> dict[str, Any] | None:
    """The form a previous launch left in `output_dir` (language excluded), or None when there is none."""
    if not output_dir:
        return None
    path = Path(output_dir) / RUN_FORM_NAME
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {key: value for key, value in data.items() if key != "top.lang"} if isinstance(data, dict) else None
