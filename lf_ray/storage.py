"""Local paths and object-store URIs (s3://, gs://) through pyarrow.fs, the library Ray Train and Ray Data use.

Credentials and endpoints come only from the standard environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL,
AWS_DEFAULT_REGION, GOOGLE_APPLICATION_CREDENTIALS, instance profiles). `file://` is a local path everywhere.
Every pyarrow failure becomes a StorageError naming the URI, pyarrow's short reason and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lf_ray.constants import lf_ray_home
from lf_ray.errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs

SCHEMES = ("s3", "gs", "gcs")
LOCAL_PREFIX = "file://"
S3_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""pyarrow 25's `S3FileSystem()` ignores these (only `FileSystem.from_uri` reads them), so lf-ray passes them on."""
S3_REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Fail in seconds, not minutes, when an endpoint is down; three attempts still ride out a throttled request.
S3_CONNECT_TIMEOUT_S = 3.0
S3_REQUEST_TIMEOUT_S = 30.0
S3_MAX_ATTEMPTS = 3
GCS_RETRY_LIMIT = timedelta(seconds=15)
COPY_THREADS = 8


@dataclass(frozen=True)
class StoredFile:
    """One file under a prefix or folder: its path relative to it, size in bytes, mtime (object stores:
    LastModified) in seconds since the epoch."""

    path: str
    size: int
    mtime: float | None


def is_uri(path: str | os.PathLike) -> bool:
    text = str(path)
    return "://" in text and not text.startswith(LOCAL_PREFIX)


def resolve(path: str | os.PathLike) -> str:
    """Local: absolute and ~-expanded (Ray and workers on other cwd's need that); URI: unchanged, scheme checked."""
    return _resolve(path, what=None)


def join(base: str | os.PathLike, *parts: str) -> str:
    text = str(base)
    if not is_uri(text):
        return str(Path(text.removeprefix(LOCAL_PREFIX), *parts))
    pieces = [text.rstrip("/"), *(part.strip("/") for part in parts if part.strip("/"))]
    return "/".join(pieces)


def filesystem(uri: str | os.PathLike) -> tuple[pyarrow.fs.FileSystem, str]:
    """(filesystem, path within it): `s3://b/x` -> (S3FileSystem, "b/x"); local -> (LocalFileSystem, abs path)."""
    import pyarrow.fs

    path = resolve(uri)
    if not is_uri(path):
        return pyarrow.fs.LocalFileSystem(), path
    scheme, rest = path.split("://", 1)
    rest = rest.strip("/")
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise StorageError(f"`{uri}` names no bucket; write it as {scheme}://<bucket>/<path>")
    return _object_store(scheme, bucket, _environment()), rest


def scheme_filesystem(name: str) -> pyarrow.fs.FileSystem:
    """LLaMA-Factory's `ray_storage_filesystem: s3|gs|gcs`: a filesystem built from the environment alone."""
    if name not in SCHEMES:
        raise StorageError(
            f"ray_storage_filesystem `{name}` is not a supported filesystem; use one of {', '.join(SCHEMES)}, "
            "or leave it out and put the scheme in ray_storage_path (e.g. s3://bucket/runs)"
        )
    return _object_store(name, None, _environment())


def exists(uri: str | os.PathLike) -> bool:
    return _info(uri).type.name != "NotFound"


def is_file(uri: str | os.PathLike) -> bool:
    return _info(uri).type.name == "File"


def is_dir(uri: str | os.PathLike) -> bool:
    return _info(uri).type.name == "Directory"


def read_bytes(uri: str | os.PathLike) -> bytes:
    fs, path = filesystem(uri)
    with _translated(uri, "read"), fs.open_input_stream(path) as stream:
        return stream.read()


def read_text(uri: str | os.PathLike) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Atomic: a local file is written beside its target and renamed; an object appears whole on PUT."""
    fs, path = filesystem(uri)
    with _translated(uri, "write"):
        if is_uri(resolve(uri)):
            with fs.open_output_stream(path) as stream:
                stream.write(data)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            partial.write_bytes(data)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def write_text(uri: str | os.PathLike, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def list_files(uri: str | os.PathLike) -> list[StoredFile]:
    """Every file under a prefix or folder, recursively, sorted; a single file lists itself by its name."""
    return _listing(uri)[1]


def list_dirs(uri: str | os.PathLike) -> list[str]:
    """The folders (object stores: common prefixes) directly under `uri`, as full paths or URIs, sorted;
    none when `uri` does not exist."""
    import pyarrow.fs

    if not is_dir(uri):
        return []
    fs, path = filesystem(uri)
    with _translated(uri, "list"):
        infos = fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=False))
    return sorted(join(uri, info.base_name) for info in infos if info.type == pyarrow.fs.FileType.Directory)


def upload_dir(local: Path, uri: str) -> list[str]:
    """Copy every file under `local` to `uri/<relative path>`; returns the relative paths, sorted."""
    local = Path(resolve(local))
    if not local.is_dir():
        raise StorageError(f"cannot upload `{local}` to `{uri}`: it is not a folder; pass the folder to upload")
    relative = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    _copy([(str(local / rel), join(uri, rel)) for rel in relative])
    return relative


def download_dir(uri: str, local: Path) -> list[str]:
    """Copy every file under `uri` into `local/<relative path>`; returns the relative paths, sorted.
    A single object lands in `local` under its own name."""
    kind, files = _listing(uri)
    source = str(uri).rstrip("/").rsplit("/", 1)[0] if kind == "file" else str(uri)
    _copy([(join(source, stored.path), str(Path(local, stored.path))) for stored in files])
    return [stored.path for stored in files]


def move_dir(source: str, target: str) -> list[str]:
    """Move every file under `source` to the same place under `target` on one object store (server-side copies,
    then `source` is deleted); returns the relative paths, sorted."""
    files = [stored.path for stored in _listing(source)[1]]
    fs, _ = filesystem(source)

    def copy(rel: str) -> None:
        with _translated(join(target, rel), "write"):
            fs.copy_file(filesystem(join(source, rel))[1], filesystem(join(target, rel))[1])

    with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
        list(pool.map(copy, files))
    delete(source)
    return files


def delete(uri: str | os.PathLike) -> None:
    """A file, or a whole prefix/folder; a missing one is fine."""
    fs, path = filesystem(uri)
    info = _info(uri)
    with _translated(uri, "delete"):
        if info.type.name == "File":
            fs.delete_file(path)
        elif info.type.name == "Directory" and is_uri(resolve(uri)) and "/" not in path:
            fs.delete_dir_contents(path)  # a bucket itself stays
        elif info.type.name == "Directory":
            fs.delete_dir(path)


def localize(uri: str | os.PathLike) -> Path:
    """A node-local copy of a URI (a local path is returned as is), downloaded once per node and reused while
    the source's listing (paths, sizes, mtimes) is unchanged. A copy only counts once it is renamed into place
    and its identity json is written beside it, so a killed download is never taken for a finished one."""
    path = resolve(uri)
    if not is_uri(path):
        return Path(path)
    cache = lf_ray_home() / "storage_cache"
    identity = _identity(path)
    # a file keeps its extension: readers pick the format by it
    key = _cache_key(path) + (os.path.splitext(path)[1] if identity["kind"] == "file" else "")
    target, stamp = cache / key, cache / f"{key}.json"
    if _is_current(target, stamp, identity):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"{key}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        if identity["kind"] == "file":
            _copy([(path, str(partial))])
        else:
            _copy([(join(path, rel), str(partial / rel)) for rel, _, _ in identity["files"]])
        with _locked(cache / f"{key}.lock"):
            if not _is_current(target, stamp, identity):  # else another process finished first: keep theirs
                _swap_in(partial, target, stamp, identity)
            _sweep_dead_partials(cache, key)
    finally:
        _remove(partial)
    return target


def local_mirror(uri: str) -> Path:
    """A deterministic node-local folder a writer fills before `upload_dir` sends it to `uri` (created empty
    the first time; kept between calls so a retried step can reuse it)."""
    mirror = lf_ray_home() / "staging" / _cache_key(resolve(uri))
    mirror.mkdir(parents=True, exist_ok=True)
    return mirror


def check_access(uri: str | os.PathLike, *, what: str, must_exist: bool) -> None:
    """Plan-time check, a request or two: the bucket answers to the environment's credentials and, when
    `must_exist`, the object/prefix (or local path) is there."""
    path = _resolve(uri, what=what)
    if not is_uri(path):
        if must_exist and not Path(path).exists():
            raise StorageError(f"{what} `{uri}` does not exist; fix the path, or create it before running")
        return
    fs, fs_path = filesystem(path)
    bucket = fs_path.split("/", 1)[0]
    with _translated(path, "reach", what):
        for checked in [bucket, fs_path] if must_exist else [bucket]:
            if fs.get_file_info(checked).type.name == "NotFound":  # _storage_error tells bucket from object
                raise FileNotFoundError(f"Path does not exist '{checked}'")


# -- filesystems --------------------------------------------------------------------------------------------


def _resolve(path: str | os.PathLike, what: str | None) -> str:
    text = str(path)
    if not is_uri(text):
        return str(Path(text.removeprefix(LOCAL_PREFIX)).expanduser().resolve())
    scheme = text.split("://", 1)[0]
    if scheme not in SCHEMES:
        raise StorageError(
            f"{_where(text, what)} uses the unsupported storage scheme `{scheme}://`; use a local path or one of "
            f"{', '.join(s + '://' for s in SCHEMES)}"
        )
    return text


def _environment() -> tuple[tuple[str, str], ...]:
    """Part of the filesystem cache key: a changed endpoint or credential gets a fresh filesystem."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "GOOGLE_"))))


def _s3_endpoint() -> str | None:
    return next((os.environ[name] for name in S3_ENDPOINT_VARS if os.environ.get(name)), None)


@functools.lru_cache(maxsize=64)
def _object_store(scheme: str, bucket: str | None, environment: tuple) -> pyarrow.fs.FileSystem:
    import pyarrow.fs

    if scheme in ("gs", "gcs"):
        return pyarrow.fs.GcsFileSystem(retry_time_limit=GCS_RETRY_LIMIT)
    endpoint = _s3_endpoint()
    region = next((os.environ[name] for name in S3_REGION_VARS if os.environ.get(name)), None)
    if region is None and endpoint is None and bucket:  # real AWS, region unknown: ask the bucket (as from_uri)
        with contextlib.suppress(OSError):
            region = pyarrow.fs.resolve_s3_region(bucket)
    return pyarrow.fs.S3FileSystem(
        region=region,
        endpoint_override=endpoint,
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        request_timeout=S3_REQUEST_TIMEOUT_S,
        retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS),
    )


def _info(uri: str | os.PathLike) -> pyarrow.fs.FileInfo:
    fs, path = filesystem(uri)
    with _translated(uri, "read"):
        return fs.get_file_info(path)


def _listing(uri: str | os.PathLike) -> tuple[str, list[StoredFile]]:
    """("file" | "dir", its files): one HEAD, then one recursive LIST for a prefix or folder."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    with _translated(uri, "list"):
        info = fs.get_file_info(path)
        if info.type == pyarrow.fs.FileType.NotFound:
            raise FileNotFoundError(f"Path does not exist '{path}'")
        is_single = info.type == pyarrow.fs.FileType.File
        infos = [info] if is_single else fs.get_file_info(pyarrow.fs.FileSelector(path, recursive=True))
    root = path.rsplit("/", 1)[0] if is_single else path
    files = [
        StoredFile(i.path.removeprefix(root + "/"), int(i.size), i.mtime.timestamp() if i.mtime else None)
        for i in infos
        if i.type == pyarrow.fs.FileType.File
    ]
    return ("file" if is_single else "dir"), sorted(files, key=lambda stored: stored.path)


def _copy(pairs: list[tuple[str, str]]) -> None:
    """Stream each (source, destination) file, a few at a time; local destinations get their folders."""

    def copy(pair: tuple[str, str]) -> None:
        (src_fs, src), (dst_fs, dst) = filesystem(pair[0]), filesystem(pair[1])
        with _translated(pair[0], "read"):  # opening checks the source exists, so a missing one reads as such
            reader = src_fs.open_input_stream(src)
        with reader, _translated(pair[1], "write"):
            if not is_uri(pair[1]):
                Path(dst).parent.mkdir(parents=True, exist_ok=True)
            with dst_fs.open_output_stream(dst) as writer:
                shutil.copyfileobj(reader, writer, 8 << 20)

    with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
        list(pool.map(copy, pairs))


# -- the node-local cache -----------------------------------------------------------------------------------


def _cache_key(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:20]


def _identity(path: str) -> dict:
    """What the copy was made from; a different listing means the source changed."""
    kind, files = _listing(path)
    return {"uri": path, "kind": kind, "files": [[stored.path, stored.size, stored.mtime] for stored in files]}


def _is_current(target: Path, stamp: Path, identity: dict) -> bool:
    try:
        return target.exists() and json.loads(stamp.read_text()) == identity
    except (OSError, ValueError):
        return False


def _swap_in(partial: Path, target: Path, stamp: Path, identity: dict) -> None:
    """The stamp goes first and comes back last: a stamp on disk always describes the target beside it."""
    stamp.unlink(missing_ok=True)
    if target.exists() or target.is_symlink():
        stale = target.with_name(f"{target.name}.stale-{uuid.uuid4().hex[:8]}")
        target.rename(stale)
        _remove(stale)
    partial.rename(target)
    partial_stamp = stamp.with_name(f"{stamp.name}.{uuid.uuid4().hex[:8]}.partial")
    partial_stamp.write_text(json.dumps(identity))
    os.replace(partial_stamp, stamp)


def _sweep_dead_partials(cache: Path, key: str) -> None:
    """Downloads killed mid-way leave `<key>.partial-<pid>-*`; drop those whose process is gone."""
    for leftover in cache.glob(f"{key}.partial-*"):
        try:
            os.kill(int(leftover.name.split("-")[1]), 0)
        except ProcessLookupError:
            _remove(leftover)
        except (ValueError, PermissionError, OverflowError):
            pass  # another user's live process, or not a pid: leave it


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Serializes the swap (not the download) between processes on this node."""
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- errors ------------------------------------------------------------------------------------------------

_UNREACHABLE = ("NETWORK_CONNECTION", "Could not connect", "Could not resolve", "Connection refused", "timed out")
_MISSING_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket", "bucket does not exist")
_AWS_CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")  # fmt: skip
_DENIED = ("ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH",
           "HTTP status 403", "Forbidden", "PERMISSION_DENIED", "UNAUTHENTICATED")  # fmt: skip


@contextlib.contextmanager
def _translated(uri: str | os.PathLike, action: str, what: str | None = None) -> Iterator[None]:
    """pyarrow's OSError / ArrowInvalid -> a StorageError with the URI, the short reason and the fix."""
    import pyarrow

    try:
        yield
    except (OSError, pyarrow.ArrowException) as err:
        raise _storage_error(str(uri), action, err, what) from None


def _short_reason(err: BaseException | str) -> str:
    return re.sub(r"\s*\(Request ID: [^)]*\)", "", str(err)).split(". Detail:")[0].strip()[:300]


def unreachable_endpoint(err: BaseException) -> str | None:
    """When `err` or an error it was raised from says the storage endpoint could not be reached (pyarrow's error, even
    inside a Ray worker's traceback): the endpoint and the short reason, for a message; None for any other error."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    lines = (line.strip() for error in chain for line in str(error).splitlines())
    line = next((line for line in lines if _is_store_line(line) and any(m in line for m in _UNREACHABLE)), None)
    if line is None:
        return None
    endpoint = "the GCS endpoint" if "google::cloud" in line else _s3_endpoint() or "the default AWS endpoint"
    return f"{endpoint} ({_short_reason(line)})"


def _is_store_line(line: str) -> bool:
    """A line of pyarrow's object-store client (not, say, a collective operation that timed out)."""
    return "AWS Error" in line or "google::cloud" in line


def _storage_error(uri: str, action: str, err: Exception, what: str | None) -> StorageError:
    reason = _short_reason(err)
    head = f"cannot {action} {_where(uri, what)}"
    if not is_uri(uri):
        if isinstance(err, FileNotFoundError):
            fix = "fix the path"
        elif getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in reason:
            fix = "free space on that disk, or write to another folder (nothing was committed there)"
        else:
            fix = "check it and its permissions"
        return StorageError(f"{head}: {reason}; {fix}")
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    gcs = uri.startswith(("gs://", "gcs://"))
    if any(marker in reason for marker in _UNREACHABLE):
        endpoint = "the GCS endpoint" if gcs else _s3_endpoint() or "the default AWS endpoint"
        return StorageError(
            f"{head}: the storage endpoint {endpoint} is unreachable ({reason}); start the storage server, or point "
            f"{'the network' if gcs else 'AWS_ENDPOINT_URL'} at one that answers"
        )
    if any(marker in reason for marker in _MISSING_BUCKET) or (
        isinstance(err, FileNotFoundError) and not _bucket_exists(uri)
    ):
        return StorageError(f"{head}: bucket `{bucket}` does not exist ({reason}); create it, or fix the bucket name")
    if isinstance(err, FileNotFoundError):
        return StorageError(f"{head}: no such object or prefix ({reason}); fix the path, or write it first")
    keys = "GOOGLE_APPLICATION_CREDENTIALS" if gcs else "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
    source = _credential_source(gcs)
    if source is None:
        return StorageError(
            f"{head}: no credentials were found in the environment ({reason}); set {keys}, or run on a node "
            "whose instance profile / service account can reach the bucket"
        )
    if any(marker in reason for marker in _DENIED):
        return StorageError(
            f"{head}: permission denied for the credentials from {source} ({reason}); grant them access to bucket "
            f"`{bucket}`, or set {keys} to credentials that have it"
        )
    return StorageError(f"{head}: {reason}; check the URI, the credentials and the storage service")


def _bucket_exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    try:
        return fs.get_file_info(path.split("/", 1)[0]).type.name != "NotFound"
    except OSError:
        return True  # cannot tell: report the object as missing, not the bucket


def _credential_source(gcs: bool) -> str | None:
    """Where the request's credentials came from, as far as the environment shows; None: nowhere (pyarrow
    then sends unsigned requests, which a private bucket refuses)."""
    if gcs:
        return os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or "the application-default credentials"
    found = [name for name in _AWS_CREDENTIAL_VARS if os.environ.get(name)]
    files = (
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
    )
    found += [name for name in files if Path(name).expanduser().is_file()]
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true":
        found.append("the instance profile, if this node has one")
    return found[0] if found else None


def _where(uri: str, what: str | None) -> str:
    return f"{what} `{uri}`" if what else f"`{uri}`"
