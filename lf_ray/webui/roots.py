"""Which files and storage the board may name, and who may open it.

Anyone who can open the board can type a path into a form: a dataset folder to list and preview, a model to load
in the Chat tab, an output folder a run writes to, or any config key in the Train tab's extra arguments. Every
such path must lie under an allowed root: the folder the board was started in, its save and config folders, and
the folders or storage URIs given with `--allow-path` (or `LF_RAY_BOARD_PATHS`, comma-separated). A path is
resolved before it is compared (`..` and symlinks followed), so neither traversal nor a symlink leads out. A
relative value that is no file (a hub id `org/model`, `builtin:tiny-llama`) resolves inside the start folder and
stays allowed.

The board listens on 127.0.0.1. Any other address, or a public `--share` link, needs credentials
(`--auth USER:PASSWORD` or `LF_RAY_BOARD_AUTH`): the board starts training jobs and reads files as the user who
runs it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_ray.constants import board_host, board_share
from lf_ray.errors import ConfigError

ENV_BOARD_PATHS = "LF_RAY_BOARD_PATHS"
ENV_BOARD_AUTH = "LF_RAY_BOARD_AUTH"

PATH_KEYS = (
    "model_name_or_path",
    "adapter_name_or_path",
    "cache_dir",
    "dataset_dir",
    "tokenized_path",
    "output_dir",
    "logging_dir",
    "resume_from_checkpoint",
    "deepspeed",
    "ray_storage_path",
    "ref_model",
    "ref_model_adapters",
    "reward_model",
    "reward_model_adapters",
    "export_dir",
    "save_dir",
    "task_dir",
    "new_special_tokens_config",
    "profiler_output_dir",
    "swanlab_logdir",
)
"""The config keys that name a file, a folder or storage: checked in every config the board writes."""


@dataclass(frozen=True)
class AllowedRoots:
    folders: tuple[Path, ...]
    uris: tuple[str, ...] = ()

    @classmethod
    def of(cls, given: Iterable[str | os.PathLike], *, environ: Mapping[str, str] = os.environ) -> AllowedRoots:
        """The start folder, `given` and `LF_RAY_BOARD_PATHS`; a value with `://` is a storage URI prefix."""
        from_env = [part.strip() for part in environ.get(ENV_BOARD_PATHS, "").split(",") if part.strip()]
        values = [str(value) for value in (Path.cwd(), *given, *from_env)]
        uris = tuple(value.rstrip("/") for value in values if "://" in value)
        folders = tuple(dict.fromkeys(_resolved(value) for value in values if "://" not in value))
        return cls(folders, uris)

    def allows(self, value: str) -> bool:
        if "://" in value:
            return any(value == uri or value.startswith(f"{uri}/") for uri in self.uris)
        path = _resolved(value)
        return any(path == folder or folder in path.parents for folder in self.folders)

    def check(self, key: str, value: Any) -> None:
        """Raises ConfigError when `value` (a path, a comma-separated list of paths or a list) leads outside."""
        for part in _paths(value):
            if not self.allows(part):
                raise ConfigError(
                    f"`{key}: {part}` is outside the folders this board may use ({self.described()}); pick a path "
                    "under one of them, or start the board with `--allow-path` naming its folder"
                )

    def check_config(self, args: Mapping[str, Any]) -> None:
        """Every path key of a config the board is about to write."""
        for key in PATH_KEYS:
            if args.get(key) is not None:
                self.check(key, args[key])

    def described(self) -> str:
        return ", ".join([*map(str, self.folders), *self.uris])


def _resolved(value: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(value)))


def _paths(value: Any) -> list[str]:
    if isinstance(value, bool) or value is None:  # resume_from_checkpoint: true names no path
        return []
    if isinstance(value, (list, tuple)):
        return [str(part).strip() for part in value if str(part).strip()]
    if isinstance(value, dict):  # a DeepSpeed config given inline
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]


# -- who may open the board --------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def board_auth(
    host: str | None, share: bool | None, given: str | None, *, environ: Mapping[str, str] = os.environ
) -> Callable[[str, str], bool] | None:
    """Gradio's `auth` for a board on `host` (`--host`, else GRADIO_SERVER_NAME, else loopback): None on loopback
    without credentials; a constant-time check of `USER:PASSWORD` (`--auth`, else `LF_RAY_BOARD_AUTH`) otherwise.
    Refuses to expose the board without them."""
    host, share = board_host(host), board_share(share)
    credentials = given or environ.get(ENV_BOARD_AUTH)
    if not credentials:
        if share or not is_loopback(host):
            where = "a public --share link" if share else f"--host {host}"
            raise ConfigError(
                f"{where} would let anyone who reaches it start jobs and read files as you; give credentials with "
                f"{ENV_BOARD_AUTH}=USER:PASSWORD (or --auth USER:PASSWORD), or listen on 127.0.0.1"
            )
        return None
    user, sep, password = credentials.partition(":")
    if not (user and sep and password):
        raise ConfigError(f"board credentials must read USER:PASSWORD (both non-empty); fix {ENV_BOARD_AUTH} or --auth")
    expected = (user.encode(), password.encode())

    def check(name: str, secret: str) -> bool:
        same_user = hmac.compare_digest(name.encode(), expected[0])
        return hmac.compare_digest(secret.encode(), expected[1]) and same_user

    return check
