"""Artifacts on disk: directories written atomically, with a `manifest.json`, and content fingerprints.

A step writes into a hidden temporary sibling and renames it into place at the end, so a crash or a bad
input never leaves a half-written artifact where a later run would take it for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lf_ray.constants import MANIFEST_NAME


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
    if path.exists():
        os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def write_text(path: Path, text: str) -> None:
    """Write a text file through a temporary file and an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, payload: Any) -> None:
    """Write JSON through a temporary file and an atomic rename."""
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a finished artifact, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(directory) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def hash_file(path: Path, digest: hashlib._Hash | None = None) -> str:
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(path: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """One hash over a file, or over every file of a directory (names and contents, in sorted order)."""
    path = Path(path)
    if path.is_file():
        return hash_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if suffixes is None or file.suffix in suffixes or file.name in suffixes:
            digest.update(str(file.relative_to(path)).encode())
            hash_file(file, digest)
    return digest.hexdigest()


def fingerprint(payload: Any) -> str:
    """A stable hash of JSON-able data (dict keys sorted)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
