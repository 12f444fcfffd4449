"""Start or join the Ray cluster a command runs on, and describe it."""

from __future__ import annotations

import logging
import os
from typing import Any

from lf_ray.constants import ENV_LOG_LEVEL, ENV_RAY_ADDRESS


def ensure_ray(init_kwargs: dict[str, Any] | None = None) -> None:
    """Connect to `ray_init_kwargs.address` / RAY_ADDRESS when set, else start a local Ray; reuse one already up."""
    import ray

    if ray.is_initialized():
        quiet_ray_logging()
        return
    kwargs = dict(init_kwargs or {})
    address = kwargs.pop("address", None) or os.environ.get(ENV_RAY_ADDRESS)
    ray.init(address=address, **kwargs)
    quiet_ray_logging()


def quiet_ray_logging() -> None:
    """Ray Data prints every progress tick at INFO; lf-ray prints its own summary. Raise the console handlers'
    level (LF_RAY_LOG_LEVEL, default WARNING); Ray's log files under /tmp/ray keep everything."""
    import ray.data  # noqa: F401  (configures the "ray.data" logger on import; adjust it afterwards)

    level = os.environ.get(ENV_LOG_LEVEL, "WARNING").upper()
    for name in ("ray.data", "ray.train", "ray.tune"):
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
                handler.setLevel(level)
