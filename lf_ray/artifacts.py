"""Artifacts: a folder at a URI (local, NFS, `s3://`, `gs://`) with one `manifest.json` schema and one commit.

Every writer (preprocess, train, tune, eval, export, serve, a pipeline step) fills a staging place and commits
it (`committed` for a local folder; `staged` when workers on many nodes write the files): on a local or NFS
path the staging folder is renamed into place; on an object store the files go under the final prefix and the
manifest is written last. A reader trusts only a committed manifest, so a writer killed midway leaves nothing
that counts as finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from lf_ray import __version__, storage
from lf_ray.constants import MANIFEST_NAME


def now() -> str:
    """Local time with its UTC offset, to the millisecond (ISO 8601: sorts and parses back). lf-ray's one format."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def build_manifest(
    kind: str,
    *,
    fingerprint: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The one manifest schema: what the artifact is (`kind`), its identity, what it was made from and of, how
    it went; `details` are the kind's own facts (a dataset's splits, an export's shards)."""
    return {
        "kind": kind,
        "status": "complete",
        "fingerprint": fingerprint,
        "inputs": dict(inputs or {}),
        "outputs": dict(outputs or {}),
        "metrics": dict(metrics or {}),
        "timings": dict(timings or {}),
        "lf_ray_version": __version__,
        "created_at": now(),
        **details,
    }


def is_complete(manifest: Mapping[str, Any] | None, fingerprint: str | None = None) -> bool:
    """A committed manifest (of this fingerprint, when given)."""
    if not manifest or manifest.get("status") != "complete":
        return False
    return fingerprint is None or manifest.get("fingerprint") == fingerprint


def read_manifest(location: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a committed artifact at a path or URI, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(storage.read_text(storage.join(location, MANIFEST_NAME)))
    except (OSError, ValueError, storage.StorageError):
        return None


@contextlib.contextmanager
def committed(location: str | os.PathLike) -> Iterator[Path]:
    """Yield a local staging folder that becomes the artifact at `location` only if the block finishes.

    A `manifest.json` the block writes is committed last. On error nothing at `location` changes (local) or
    nothing there gains a manifest (object store)."""
    if storage.is_uri(location):
        uri = str(location)
        staging = storage.local_mirror(uri)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            yield staging
            publish(staging, uri)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    with atomic_directory(Path(storage.resolve(location))) as tmp:
        yield tmp


@contextlib.contextmanager
def staged(location: str | os.PathLike) -> Iterator[str]:
    """Yield a staging place for an artifact whose files workers on any node write; it becomes the artifact at
    `location` only if the block finishes, with the manifest the block wrote committed last.

    On a local or NFS path that is a folder beside the target, renamed into place. On an object store it is a
    prefix beside the target; its objects are then copied server-side under the target (objects cannot be
    renamed), the manifest last. On error nothing at `location` changes and the staging place is removed."""
    if not storage.is_uri(location):
        with atomic_directory(Path(storage.resolve(location))) as tmp:
            yield str(tmp)
        return
    uri = str(location).rstrip("/")
    parent, name = uri.rsplit("/", 1)
    staging = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield staging
        manifest = storage.read_bytes(storage.join(staging, MANIFEST_NAME))
        storage.delete(storage.join(staging, MANIFEST_NAME))
        storage.delete(storage.join(uri, MANIFEST_NAME))
        storage.delete(uri)
        storage.move_dir(staging, uri)
        storage.write_bytes(storage.join(uri, MANIFEST_NAME), manifest)
    finally:
        storage.delete(staging)


def publish(local: Path, uri: str, *, replace: bool = True) -> None:
    """Upload the files of `local` (a throwaway staging folder) under `uri`, the manifest last: an object store's
    commit. `replace` first removes what was under `uri`; without it, other files there are kept."""
    manifest = local / MANIFEST_NAME
    committed_text = manifest.read_bytes() if manifest.exists() else None
    manifest.unlink(missing_ok=True)
    storage.delete(storage.join(uri, MANIFEST_NAME))
    if replace:
        storage.delete(uri)
    storage.upload_dir(local, uri)
    if committed_text is not None:
        storage.write_bytes(storage.join(uri, MANIFEST_NAME), committed_text)


def write_manifest(location: str | os.PathLike, manifest: Mapping[str, Any]) -> None:
    """Commit an artifact whose files are already in place (a pipeline step's folder): the manifest, atomically."""
    storage.write_text(storage.join(location, MANIFEST_NAME), json_text(manifest))


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
    write_text(path, json_text(payload))


def json_text(payload: Any) -> str:
    """lf-ray's JSON files: indented, UTF-8 kept, anything else as its string."""
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"


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


def hash_stored(location: str) -> str:
    """The identity of files at a URI without reading them: relative paths, sizes and modification times."""
    listing = [(f.path, f.size, f.mtime) for f in storage.list_files(location)]
    return fingerprint({"uri": location, "files": sorted(listing)})


def fingerprint(payload: Any) -> str:
    """A stable hash of JSON-able data (dict keys sorted)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
