"""Which tracker records what: transformers' own integrations, lf-ray's MLflow callback, swanlab's callback.

    problems += tracker_packages_missing(cfg)             # the launcher, before training
    overrides = {"report_to": trainer_report_to(cfg)}     # what the worker gives the training arguments
    ...
    finish_tracker_runs()                                 # after the last evaluation, before the worker ends

`report_to` names transformers' integrations: `tensorboard` writes event files under `logging_dir` (the
TENSORBOARD_LOGGING_DIR that `train.arguments.training_environment` sets), `wandb` a W&B run (WANDB_PROJECT,
WANDB_MODE, WANDB_DIR ... as W&B reads them), and so on. lf-ray's `MlflowCallback` replaces transformers' `mlflow`,
and with `use_swanlab` swanlab's callback replaces `swanlab` (LLaMA-Factory drops it from `report_to` likewise).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig


def wants_mlflow(report_to: str | Sequence[str] | None) -> bool:
    """Whether a Trainer `report_to` value asks for MLflow ("mlflow", ["mlflow", ...] or "all")."""
    names = report_to_list(report_to)
    return "mlflow" in names or "all" in names


def report_to_without_mlflow(report_to: str | Sequence[str] | None) -> list[str]:
    """The `report_to` to give transformers once lf-ray's MlflowCallback records the MLflow side."""
    names = report_to_list(report_to)
    if "all" in names:
        from transformers.integrations import get_available_reporting_integrations

        names = get_available_reporting_integrations()
    return [name for name in names if name not in ("mlflow", "none")] or ["none"]


def report_to_list(report_to: str | Sequence[str] | None) -> list[str]:
    if report_to is None:
        return []
    return [report_to] if isinstance(report_to, str) else list(report_to)


def trainer_report_to(cfg: LfRayConfig) -> list[str]:
    """The `report_to` transformers gets: the config's, less the trackers lf-ray's callbacks record."""
    names = report_to_without_mlflow(cfg.get("report_to"))
    if cfg.finetuning.use_swanlab:
        names = [name for name in names if name != "swanlab"] or ["none"]
    return names


INSTALL_HINT = "pip install 'lf-ray[tracking]'"
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "swanlab": ("swanlab",)}
"""Tracker → the packages that provide it (transformers' TensorBoard callback takes either writer)."""


def tracker_packages_missing(cfg: LfRayConfig) -> list[str]:
    """One problem per tracker the config asks for whose package is not installed here, found before training
    instead of when the workers build their trainers."""
    asked = {name: f"`report_to: {name}`" for name in trainer_report_to(cfg) if name in _PACKAGES}
    if cfg.finetuning.use_swanlab:
        asked["swanlab"] = "`use_swanlab: true`"
    return [
        f"{setting} needs {' or '.join(_PACKAGES[name])}, which is not installed: {INSTALL_HINT}"
        for name, setting in asked.items()
        if not any(_installed(package) for package in _PACKAGES[name])
    ]


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def finish_tracker_runs() -> None:
    """End the SwanLab and W&B runs this process opened, writing their last records. Both would do it in an
    atexit hook, which a Ray Train worker never runs: the worker group is stopped with `ray.kill`."""
    swanlab = sys.modules.get("swanlab")
    if swanlab is not None and swanlab.has_run():
        swanlab.finish()
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
