"""Start or join the Ray cluster a command runs on, and describe it."""

from __future__ import annotations

import os
from typing import Any

from lf_ray.constants import ENV_RAY_ADDRESS


def ensure_ray(init_kwargs: dict[str, Any] | None = None) -> None:
    """Connect to `ray_init_kwargs.address` / RAY_ADDRESS when set, else start a local Ray; reuse one already up."""
    import ray

    if ray.is_initialized():
        return
    kwargs = dict(init_kwargs or {})
    address = kwargs.pop("address", None) or os.environ.get(ENV_RAY_ADDRESS)
    ray.init(address=address, **kwargs)


def cluster_resources() -> dict[str, float] | None:
    """Resources of a reachable running cluster (RAY_ADDRESS or a local `ray start`); None when there is none."""
    import ray

    if ray.is_initialized():
        return dict(ray.cluster_resources())
    try:
        ray.init(address=os.environ.get(ENV_RAY_ADDRESS) or "auto", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError):
        return None
    try:
        return dict(ray.cluster_resources())
    finally:
        ray.shutdown()
