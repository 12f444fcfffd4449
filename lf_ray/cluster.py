"""Start or join the Ray cluster a command runs on, and describe it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from lf_ray.constants import ENV_LOG_LEVEL, ENV_RAY_ADDRESS
from lf_ray.errors import ConfigError

LOCAL_TRAIN_HEALTH_CHECK_INTERVAL_S = "0.5"
"""Ray Train's controller polls its workers every 2 s by default, so a run's start and its end each wait up to 2 s
for the next poll. A Ray instance lf-ray starts on this machine polls 4 times a second (about 3 s less per run of
the test suite's tiny trainings); set RAY_TRAIN_HEALTH_CHECK_INTERVAL_S to choose."""


def prepare_local_ray_environment() -> None:
    """Settings a Ray instance started by this process passes to its workers (call before `ray.init`)."""
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", LOCAL_TRAIN_HEALTH_CHECK_INTERVAL_S)


def ensure_ray(init_kwargs: dict[str, Any] | None = None) -> None:
    """Connect to `ray_init_kwargs.address` / RAY_ADDRESS when set, else start a local Ray; reuse one already up."""
    import ray

    from lf_ray import console

    if ray.is_initialized():
        quiet_ray_logging()
        return
    kwargs = dict(init_kwargs or {})
    address = kwargs.pop("address", None) or os.environ.get(ENV_RAY_ADDRESS)
    if address in (None, "", "local"):
        prepare_local_ray_environment()
    if not console.verbose():
        console.quiet_loggers()
        kwargs.setdefault("logging_level", logging.WARNING)
    with _keeping_sigterm_handler():
        ray.init(address=address, **kwargs)
    quiet_ray_logging()
    log = console.route_worker_output()
    if log is not None:
        print(f"[lf-ray] Ray's worker output: {log} (--verbose prints it here)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _keeping_sigterm_handler() -> Iterator[None]:
    """Ray's core worker installs a SIGTERM handler of its own that exits the driver at once; the CLI's handler
    (SIGTERM stops a command as Ctrl-C does, with its cleanup) is put back."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(handler) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


def cluster_address(init_kwargs: dict[str, Any] | None = None) -> str | None:
    """The cluster a command would join (`ray_init_kwargs.address`, else RAY_ADDRESS); None when it would start
    a local Ray."""
    address = (init_kwargs or {}).get("address") or os.environ.get(ENV_RAY_ADDRESS)
    return None if address in (None, "", "local") else str(address)


def cluster_resources(init_kwargs: dict[str, Any] | None = None) -> dict[str, float] | None:
    """The resources of the Ray cluster this process is connected to, else of the one at `cluster_address`, read
    over a short connection; None when there is none to read (no local Ray is started for it)."""
    ray = sys.modules.get("ray")  # never imported: not connected either
    if ray is not None and ray.is_initialized():
        return dict(ray.cluster_resources())
    address = cluster_address(init_kwargs)
    if address is None:
        return None
    import ray

    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(
            f"the Ray cluster at `{address}` (ray_init_kwargs.address or RAY_ADDRESS) does not answer: {err}; "
            "start it (`ray start --head`), fix the address, or unset it to use a local Ray"
        ) from err
    try:
        return dict(ray.cluster_resources())
    finally:
        ray.shutdown()


def quiet_ray_logging() -> None:
    """Ray Data prints every progress tick at INFO; lf-ray prints its own summary. Raise the console handlers'
    level (LF_RAY_LOG_LEVEL, default WARNING); Ray's log files under /tmp/ray keep everything."""
    import ray.data  # noqa: F401  (configures the "ray.data" logger on import; adjust it afterwards)

    level = os.environ.get(ENV_LOG_LEVEL, "WARNING").upper()
    for name in ("ray.data", "ray.train", "ray.tune"):
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
                handler.setLevel(level)
