"""lf_ray.storage against a real S3 server (moto in its own process) and against local folders."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs
import pytest

from lf_ray import storage
from lf_ray.errors import StorageError
from tests.conftest import free_port, start_moto_server, stop_process


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path) -> str:
    """The same behaviour is asked of a local folder and of a bucket prefix."""
    if request.param == "local":
        return str(tmp_path / "store")
    return storage.join(request.getfixturevalue("s3_bucket"), "store")


@pytest.fixture
def cache_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LF_RAY_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def strict_s3_server() -> Iterator[str]:
    """A second moto server that checks credentials: unknown access keys get 403, as on AWS."""
    port = free_port()
    process = start_moto_server(port, INITIAL_NO_AUTH_ACTION_COUNT="0")
    yield f"http://127.0.0.1:{port}"
    stop_process(process)


def _boto3(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


# -- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [("s3://b/x", True), ("gs://b/x", True), ("gcs://b/x", True), ("ftp://h/x", True), ("/tmp/x", False),
     ("rel/x", False), ("~/x", False), ("file:///tmp/x", False)],
)  # fmt: skip
def test_is_uri(path, expected):
    assert storage.is_uri(path) is expected


def test_resolve_makes_local_paths_absolute_and_keeps_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.resolve("rel/x") == str(tmp_path.resolve() / "rel" / "x")
    assert storage.resolve("~/x") == str(Path.home().resolve() / "x")
    assert storage.resolve("file:///tmp/x") == "/tmp/x"
    assert storage.resolve(Path("/tmp/x")) == "/tmp/x"
    assert storage.resolve("s3://b/x/") == "s3://b/x/"
    assert storage.resolve("gcs://b/x") == "gcs://b/x"


def test_unknown_scheme_names_the_uri_and_the_supported_ones():
    with pytest.raises(StorageError) as err:
        storage.resolve("ftp://host/data.json")
    assert str(err.value) == (
        "`ftp://host/data.json` uses the unsupported storage scheme `ftp://`; use a local path or one of "
        "s3://, gs://, gcs://"
    )
    with pytest.raises(StorageError, match=r"^dataset `identity` file_name `hdfs://nn/x` uses the unsupported"):
        storage.check_access("hdfs://nn/x", what="dataset `identity` file_name", must_exist=True)


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [("s3://b/x", ("y",), "s3://b/x/y"), ("s3://b/x/", ("/y/", "z.json"), "s3://b/x/y/z.json"),
     ("gs://b", ("a", "", "c"), "gs://b/a/c"), ("/tmp/a", ("b", "c"), "/tmp/a/b/c"),
     ("file:///tmp/a", ("b",), "/tmp/a/b")],
)  # fmt: skip
def test_join(base, parts, expected):
    assert storage.join(base, *parts) == expected


def test_storage_errors_pickle_with_their_message():
    err = StorageError("cannot read `s3://b/x`: it does not exist; fix the path")
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


# -- reading and writing -------------------------------------------------------------------------------------


def test_text_round_trip_and_overwrite(base):
    target = storage.join(base, "deep", "nested", "note.txt")
    assert not storage.exists(target)
    storage.write_text(target, "héllo")
    assert storage.read_text(target) == "héllo"
    storage.write_bytes(target, b"\x00\x01")
    assert storage.read_bytes(target) == b"\x00\x01"
    assert storage.is_file(target) and not storage.is_dir(target)
    assert storage.is_dir(storage.join(base, "deep")) and not storage.is_file(storage.join(base, "deep"))


def test_local_write_leaves_no_partial_file(tmp_path):
    storage.write_text(tmp_path / "a" / "b.json", "{}")
    storage.write_text(tmp_path / "a" / "b.json", '{"x": 1}')
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]
    assert (tmp_path / "a" / "b.json").read_text() == '{"x": 1}'


def _sample_tree(root: Path) -> dict[str, bytes]:
    files = {"config.json": b'{"a": 1}', "weights/model.bin": bytes(range(256)) * 40, "weights/deep/tok.txt": b"t"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_upload_list_download_delete(base, tmp_path):
    files = _sample_tree(tmp_path / "src")
    assert storage.upload_dir(tmp_path / "src", base) == sorted(files)
    listed = storage.list_files(base)
    assert [(f.path, f.size) for f in listed] == [(rel, len(files[rel])) for rel in sorted(files)]
    assert all(f.mtime is not None and abs(f.mtime - time.time()) < 120 for f in listed)
    assert storage.list_files(storage.join(base, "weights", "model.bin"))[0].path == "model.bin"
    assert storage.list_dirs(base) == [storage.join(base, "weights")]
    assert storage.list_dirs(storage.join(base, "nowhere")) == []
    assert storage.download_dir(base, tmp_path / "back") == sorted(files)
    assert {rel: (tmp_path / "back" / rel).read_bytes() for rel in files} == files
    storage.delete(storage.join(base, "weights"))
    assert [f.path for f in storage.list_files(base)] == ["config.json"]
    storage.delete(storage.join(base, "config.json"))
    storage.delete(storage.join(base, "never-written"))  # missing is fine
    assert not storage.exists(storage.join(base, "config.json"))


def test_upload_of_a_missing_folder_says_so(tmp_path, s3_bucket):
    with pytest.raises(StorageError, match=r"cannot upload `.*/nope` to `s3://.*`: it is not a folder"):
        storage.upload_dir(tmp_path / "nope", s3_bucket)


def test_objects_land_where_boto3_sees_them(s3_server, s3_bucket):
    storage.write_text(storage.join(s3_bucket, "a/b.txt"), "seen")
    bucket = s3_bucket.removeprefix("s3://")
    assert _boto3(s3_server).get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"seen"


def test_filesystem_is_cached_per_bucket_and_gives_the_path_within_it(s3_bucket):
    fs, path = storage.filesystem(storage.join(s3_bucket, "x/y"))
    assert isinstance(fs, pyarrow.fs.S3FileSystem) and path == f"{s3_bucket.removeprefix('s3://')}/x/y"
    assert storage.filesystem(storage.join(s3_bucket, "z"))[0] is fs
    local_fs, local_path = storage.filesystem("file:///tmp/q")
    assert isinstance(local_fs, pyarrow.fs.LocalFileSystem) and local_path == "/tmp/q"


def test_scheme_filesystem_builds_llama_factory_filesystems(s3_bucket):
    fs = storage.scheme_filesystem("s3")
    bucket = s3_bucket.removeprefix("s3://")
    with fs.open_output_stream(f"{bucket}/x/hello.txt") as stream:
        stream.write(b"hi")
    assert storage.read_text(f"{s3_bucket}/x/hello.txt") == "hi"
    assert isinstance(storage.scheme_filesystem("gs"), pyarrow.fs.GcsFileSystem)
    assert isinstance(storage.scheme_filesystem("gcs"), pyarrow.fs.GcsFileSystem)
    with pytest.raises(StorageError, match=r"ray_storage_filesystem `ftp` is not a supported filesystem; use one of"):
        storage.scheme_filesystem("ftp")


# -- the node-local cache ------------------------------------------------------------------------------------


def test_localize_keeps_local_paths_and_copies_uris_once(cache_home, tmp_path, s3_bucket):
    assert storage.localize(tmp_path / "x") == tmp_path / "x"
    files = _sample_tree(tmp_path / "src")
    uri = storage.join(s3_bucket, "model")
    storage.upload_dir(tmp_path / "src", uri)

    copy = storage.localize(uri)
    assert copy.parent == cache_home / "storage_cache" and len(copy.name) == 20
    assert {rel: (copy / rel).read_bytes() for rel in files} == files
    first = (copy / "config.json").stat().st_mtime_ns, copy.stat().st_ino
    time.sleep(0.01)
    assert storage.localize(uri) == copy
    assert ((copy / "config.json").stat().st_mtime_ns, copy.stat().st_ino) == first  # not downloaded again

    storage.write_text(storage.join(uri, "config.json"), '{"a": 2, "b": 3}')  # a new size: the listing changes
    assert (storage.localize(uri) / "config.json").read_text() == '{"a": 2, "b": 3}'
    leftovers = sorted(p.name for p in copy.parent.iterdir())
    assert leftovers == [copy.name, f"{copy.name}.json", f"{copy.name}.lock"]


def test_localize_a_single_object(cache_home, s3_bucket):
    uri = storage.join(s3_bucket, "data", "rows.json")
    storage.write_text(uri, "[1, 2]")
    copy = storage.localize(uri)
    assert copy.is_file() and copy.read_text() == "[1, 2]"
    assert copy.suffix == ".json"  # readers choose the format by the extension


def test_a_killed_download_never_counts(cache_home, tmp_path, s3_bucket, monkeypatch):
    _sample_tree(tmp_path / "src")
    uri = storage.join(s3_bucket, "model")
    storage.upload_dir(tmp_path / "src", uri)
    cache = cache_home / "storage_cache"
    key = storage.localize(uri).name
    storage.delete(cache / key)  # a local path: removes the finished copy
    (cache / f"{key}.json").unlink()
    # what a SIGKILL mid-download leaves: a half-filled temp sibling of a process that is gone
    dead = cache / f"{key}.partial-4194305-deadbeef"
    (dead / "weights").mkdir(parents=True)
    (dead / "config.json").write_text("half")
    copy = storage.localize(uri)
    assert copy == cache / key and (copy / "config.json").read_text() == '{"a": 1}'
    assert not dead.exists()  # swept: its process is gone

    # a download failing mid-way leaves neither a copy nor a stamp; the next call starts over
    storage.delete(str(copy))
    (cache / f"{key}.json").unlink()
    real_copy = storage._copy
    monkeypatch.setattr(storage, "_copy", lambda pairs: (real_copy(pairs[:1]), 1 / 0))  # one file, then dies
    with pytest.raises(ZeroDivisionError):
        storage.localize(uri)
    assert [p.name for p in cache.iterdir()] == [f"{key}.lock"]
    monkeypatch.setattr(storage, "_copy", real_copy)
    assert (storage.localize(uri) / "weights" / "deep" / "tok.txt").read_text() == "t"


def test_a_copy_without_its_stamp_is_downloaded_again(cache_home, s3_bucket):
    uri = storage.join(s3_bucket, "rows.json")
    storage.write_text(uri, "fresh")
    copy = storage.localize(uri)
    copy.write_text("tampered")
    (copy.parent / f"{copy.name}.json").unlink()  # killed between the rename and the stamp
    assert storage.localize(uri).read_text() == "fresh"


def test_concurrent_localizations_end_with_one_good_copy(cache_home, tmp_path, s3_bucket):
    files = _sample_tree(tmp_path / "src")
    uri = storage.join(s3_bucket, "model")
    storage.upload_dir(tmp_path / "src", uri)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(storage.localize(uri))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and {rel: (results[0] / rel).read_bytes() for rel in files} == files
    assert not list((cache_home / "storage_cache").glob("*.partial-*"))


def test_local_mirror_is_deterministic_per_uri(cache_home):
    mirror = storage.local_mirror("s3://b/runs/a")
    assert mirror.is_dir() and mirror == storage.local_mirror("s3://b/runs/a") == cache_home / "staging" / mirror.name
    assert storage.local_mirror("s3://b/runs/b") != mirror


# -- errors --------------------------------------------------------------------------------------------------


def test_check_access_passes_for_what_exists(tmp_path, s3_bucket):
    storage.write_text(storage.join(s3_bucket, "data/a.json"), "[]")
    storage.check_access(storage.join(s3_bucket, "data/a.json"), what="dataset `d` file_name", must_exist=True)
    storage.check_access(storage.join(s3_bucket, "data"), what="dataset `d` file_name", must_exist=True)
    storage.check_access(storage.join(s3_bucket, "not/yet"), what="output_dir", must_exist=False)
    storage.check_access(tmp_path, what="output_dir", must_exist=True)
    with pytest.raises(StorageError, match=r"^dataset_dir `.*/nope` does not exist; fix the path, or create it"):
        storage.check_access(tmp_path / "nope", what="dataset_dir", must_exist=True)


def test_missing_bucket(s3_server):
    uri = "s3://lfr-no-such-bucket/data/a.json"
    with pytest.raises(StorageError) as err:
        storage.check_access(uri, what="dataset `identity` file_name", must_exist=False)
    assert str(err.value).startswith(f"cannot reach dataset `identity` file_name `{uri}`: bucket `lfr-no-such-bucket`")
    assert str(err.value).endswith(
        "does not exist (Path does not exist 'lfr-no-such-bucket'); create it, or fix the bucket name"
    )
    with pytest.raises(StorageError, match=r"cannot read `s3://lfr-no-such-bucket/data/a.json`: bucket .* does not"):
        storage.read_text(uri)
    with pytest.raises(StorageError, match=r"bucket `lfr-no-such-bucket` does not exist \(When initiating multiple"):
        storage.write_text(uri, "x")


def test_missing_object(s3_bucket):
    uri = storage.join(s3_bucket, "data", "a.json")
    with pytest.raises(StorageError) as err:
        storage.read_text(uri)
    assert str(err.value) == (
        f"cannot read `{uri}`: no such object or prefix ([Errno 2] Path does not exist "
        f"'{uri.removeprefix('s3://')}'); fix the path, or write it first"
    )
    with pytest.raises(StorageError, match=rf"^cannot reach dataset `d` file_name `{uri}`: no such object or prefix"):
        storage.check_access(uri, what="dataset `d` file_name", must_exist=True)
    with pytest.raises(StorageError, match=r"cannot list .*: no such object or prefix"):
        storage.list_files(storage.join(s3_bucket, "nothing-here"))


def test_unreachable_endpoint_fails_in_seconds(s3_server, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)  # part of the filesystem cache key: a fresh filesystem
    start = time.monotonic()
    with pytest.raises(StorageError) as err:
        storage.check_access("s3://bucket/x", what="output_dir", must_exist=False)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert message.startswith(f"cannot reach output_dir `s3://bucket/x`: the storage endpoint {closed} is unreachable")
    assert "Could not connect to server" in message
    assert message.endswith("start the storage server, or point AWS_ENDPOINT_URL at one that answers")


def test_no_credentials(strict_s3_server, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", strict_s3_server)
    with pytest.raises(StorageError) as err:
        storage.check_access("s3://private/x", what="model_name_or_path", must_exist=True)
    message = str(err.value)
    assert message.startswith("cannot reach model_name_or_path `s3://private/x`: no credentials were found in the")
    assert "HeadBucket operation" in message  # pyarrow's own short reason is kept
    assert "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)" in message


def test_permission_denied(strict_s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_ENDPOINT_URL", strict_s3_server)
    with pytest.raises(StorageError) as err:
        storage.check_access("s3://private/x", what="output_dir", must_exist=False)
    assert str(err.value).startswith(
        "cannot reach output_dir `s3://private/x`: permission denied for the credentials from AWS_ACCESS_KEY_ID "
        "(When getting information for bucket 'private': AWS Error ACCESS_DENIED during HeadBucket operation"
    )
    assert str(err.value).endswith("grant them access to bucket `private`, or set AWS_ACCESS_KEY_ID / "
                                   "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to credentials that have it")  # fmt: skip
    with pytest.raises(StorageError, match=r"cannot write .*permission denied .*INVALID_ACCESS_KEY_ID"):
        storage.write_text("s3://private/x", "x")
