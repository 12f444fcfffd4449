"""Artifacts commit atomically on a local disk and on a real S3 server: a writer that fails or is killed midway
leaves nothing a reader takes for finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lf_ray import storage
from lf_ray.artifacts import build_manifest, committed, is_complete, read_manifest, staged, write_manifest


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store" / "artifact")
    return storage.join(request.getfixturevalue("s3_bucket"), "store", "artifact")


def _write(folder: Path, files: dict[str, bytes], fingerprint: str) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps(build_manifest("test", fingerprint=fingerprint)))


def test_a_committed_artifact_replaces_the_old_one_whole(location):
    with committed(location) as staging:
        _write(staging, {"a.bin": b"old", "sub/b.bin": b"old"}, "v1")
    assert is_complete(read_manifest(location), "v1")
    with committed(location) as staging:
        _write(staging, {"a.bin": b"new"}, "v2")
    manifest = read_manifest(location)
    assert is_complete(manifest, "v2") and not is_complete(manifest, "v1")
    assert manifest["kind"] == "test" and manifest["lf_ray_version"] and "T" in manifest["created_at"]
    assert storage.read_bytes(storage.join(location, "a.bin")) == b"new"
    assert not storage.exists(storage.join(location, "sub", "b.bin"))  # nothing of the old one is left


def test_a_failing_writer_changes_nothing(location):
    with committed(location) as staging:
        _write(staging, {"a.bin": b"good"}, "v1")
    with pytest.raises(RuntimeError), committed(location) as staging:
        _write(staging, {"a.bin": b"half"}, "v2")
        raise RuntimeError("the writer failed midway")
    assert is_complete(read_manifest(location), "v1")
    assert storage.read_bytes(storage.join(location, "a.bin")) == b"good"


def test_a_staged_artifact_written_by_workers_commits_whole_or_not_at_all(location):
    """`staged` hands out a place any node can write (a URI on S3): the files appear at `location` only with
    the manifest, and a writer that fails leaves the old artifact and no staging objects behind."""
    with committed(location) as staging:
        _write(staging, {"old.bin": b"old"}, "v1")
    with staged(location) as place:
        storage.write_bytes(storage.join(place, "train", "part-0.parquet"), b"rows")
        assert read_manifest(location)["fingerprint"] == "v1"  # nothing of the new one is visible yet
        write_manifest(place, build_manifest("test", fingerprint="v2"))
    assert is_complete(read_manifest(location), "v2")
    assert [f.path for f in storage.list_files(location)] == ["manifest.json", "train/part-0.parquet"]

    with pytest.raises(RuntimeError), staged(location) as place:
        storage.write_bytes(storage.join(place, "train", "part-0.parquet"), b"half")
        raise RuntimeError("a worker failed")
    assert is_complete(read_manifest(location), "v2")
    assert storage.read_bytes(storage.join(location, "train", "part-0.parquet")) == b"rows"
    assert [d for d in storage.list_dirs(location.rsplit("/", 1)[0]) if ".tmp-" in d] == []


def test_the_manifest_is_uploaded_last(s3_bucket, monkeypatch):
    order = []
    upload, write = storage.upload_dir, storage.write_bytes
    monkeypatch.setattr(storage, "upload_dir", lambda local, uri: order.append("files") or upload(local, uri))
    monkeypatch.setattr(storage, "write_bytes", lambda uri, data: order.append(Path(uri).name) or write(uri, data))
    location = storage.join(s3_bucket, "artifact")
    with committed(location) as staging:
        _write(staging, {"a.bin": b"x"}, "v1")
    assert order == ["files", "manifest.json"] and is_complete(read_manifest(location), "v1")


_KILLED_WRITER = """
import json, os, sys
from lf_ray.artifacts import build_manifest, committed
with committed(sys.argv[1]) as staging:
    for index in range(int(sys.argv[2])):
        (staging / f"shard-{index:04d}.bin").write_bytes(os.urandom(256 * 1024))
    (staging / "manifest.json").write_text(json.dumps(build_manifest("test", fingerprint="v1")))
"""


def test_a_writer_killed_midway_leaves_nothing_finished(location, tmp_path):
    """SIGKILL while the artifact is being committed (uploading, for S3) or staged (local)."""
    shards = 240 if storage.is_uri(location) else 400  # enough that the kill lands before the commit ends
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), location, str(shards)],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    if storage.is_uri(location):  # kill once some objects are in the bucket
        while time.monotonic() < deadline and writer.poll() is None and not _any_object(location):
            time.sleep(0.02)
    else:  # kill while it is still writing into its staging folder
        while time.monotonic() < deadline and writer.poll() is None and not list(tmp_path.glob("store/.artifact*")):
            time.sleep(0.02)
    assert writer.poll() is None, "the writer finished before it could be killed"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert read_manifest(location) is None  # a reader (the planner) sees an unfinished artifact
    with committed(location) as staging:  # and the next writer commits over whatever was left
        _write(staging, {"a.bin": b"fresh"}, "v2")
    assert is_complete(read_manifest(location), "v2")
    assert not storage.exists(storage.join(location, "shard-0000.bin"))


def _any_object(location: str) -> bool:
    return storage.exists(location) and bool(storage.list_files(location))
