"""A quiet console: what lf-ray prints, not what every Ray worker prints.

Ray streams the output of every task and actor to the driver: worker tqdm bars, Ray Train's controller and
checkpoint reports, Ray Data and library warnings, interleaved. lf-ray keeps on the console only the standard
output of its own step tasks (their progress lines and summaries; the driver prints its own directly) and
appends everything Ray streams to a log file under `LF_RAY_HOME/logs/`. `--verbose` (LF_RAY_VERBOSE=1) leaves
Ray's console as it is. An error in a worker, actor or replica still reaches the console: it comes back to the
driver as the lf-ray error it is, not through this stream.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from lf_ray.constants import ENV_VERBOSE, lf_ray_home

STEP_TASK_PREFIX = "lf-ray "
"""Ray tasks named so (the pipeline's step tasks) keep their standard output on the console."""
_HANDLER = "lf_ray_console"
_RAY_HANDLER = "ray_print_logs"
QUIET_LOGGERS = ("ray", "mlflow", "alembic")


def verbose() -> bool:
    return os.environ.get(ENV_VERBOSE, "").strip().lower() in ("1", "true", "yes")


def ray_log_path() -> Path:
    """This process's log of what Ray's workers printed."""
    return lf_ray_home() / "logs" / f"ray-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


def route_worker_output() -> Path | None:
    """Replace Ray's printer of worker output by lf-ray's (once per process); returns the log file, or None when
    the console stays Ray's (verbose, or Ray does not stream worker output to this driver)."""
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    names = [name for name, _ in dispatcher.handlers]
    if verbose() or _RAY_HANDLER not in names:
        return None
    log = ray_log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    dispatcher.remove_handler(_RAY_HANDLER)
    dispatcher.add_handler(_HANDLER, functools.partial(route_batch, log))
    return log


def route_batch(log: Path, batch: dict[str, Any]) -> None:
    """One batch of streamed lines: all of it to the log, a step task's standard output to the console too."""
    source = batch.get("task_name") or batch.get("actor_name") or str(batch.get("pid", "?"))
    lines = batch.get("lines") or []
    with open(log, "a", encoding="utf-8") as file:
        file.writelines(f"({source}{', stderr' if batch.get('is_err') else ''}) {line}\n" for line in lines)
    if source.startswith(STEP_TASK_PREFIX) and not batch.get("is_err"):
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        sys.stdout.flush()


def quiet_loggers() -> None:
    """Driver-side chatter (Ray's start-up notices, MLflow's database set-up) at WARNING and above only, unless
    verbose."""
    if verbose():
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
