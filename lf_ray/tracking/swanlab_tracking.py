"""SwanLab runs for training (`use_swanlab: true`), with swanlab's own transformers callback, as LLaMA-Factory.

    callbacks.append(swanlab_callback(cfg))   # `stages.base.trainer_callbacks`, on every stage
    ...
    finish_tracker_runs()                     # the worker, once the outputs are saved

LLaMA-Factory's keys become `swanlab.init` arguments: `swanlab_project`, `swanlab_workspace`, `swanlab_run_name`
(the experiment name), `swanlab_mode` (`cloud` is swanlab's `online`) and `swanlab_logdir` (default: `swanlog` in
`output_dir`, where a Ray worker's files outlive it). `swanlab_api_key` goes in swanlab's `Settings`, which logs in
with it in cloud mode and writes it nowhere (LLaMA-Factory calls `swanlab.login`, which needs the network even
offline). `swanlab_lark_webhook_url` adds swanlab's Lark notification (signed with `swanlab_lark_secret`), sent
when the run ends. The run's config holds lf-ray's config by group, its secrets masked.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import swanlab
from swanlab.integration.transformers import SwanLabCallback

from lf_ray.tracking.redaction import without_secrets

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

SWANLAB_DIR = "swanlog"
"""The log folder inside `output_dir` when `swanlab_logdir` is not set (LLaMA-Factory's is ./swanlog, but a Ray
worker runs in a temporary directory)."""


class SwanLabRunCallback(SwanLabCallback):
    """swanlab's callback, which opens the run itself with lf-ray's settings (on the world's main process only):
    swanlab's own `setup` would open one with its constructor's arguments, without settings or other callbacks."""

    def __init__(
        self,
        *,
        init_kwargs: dict[str, Any],
        log_dir: str | None = None,
        api_key: str | None = None,
        notifications: list[swanlab.Callback] | None = None,
    ) -> None:
        super().__init__(log_dir=log_dir, **init_kwargs)
        self.init_kwargs = init_kwargs
        self.log_dir = log_dir
        self.settings = swanlab.Settings(api_key=api_key) if api_key else None
        self.notifications = list(notifications or [])

    def setup(self, args: Any, state: Any, model: Any = None) -> None:
        if getattr(state, "is_world_process_zero", True) and not swanlab.has_run():
            swanlab.init(
                log_dir=self.log_dir or os.path.join(args.output_dir, SWANLAB_DIR),
                settings=self.settings,
                callbacks=[self, *self.notifications],
                **self.init_kwargs,
            )
        super().setup(args, state, model)


def swanlab_callback(cfg: LfRayConfig) -> SwanLabRunCallback:
    """The callback `cfg`'s swanlab keys describe; its run's config is lf-ray's config, secrets masked."""
    ft = cfg.finetuning
    notifications: list[swanlab.Callback] = []
    if ft.swanlab_lark_webhook_url:
        from swanlab.plugin.notification import LarkCallback

        notifications.append(LarkCallback(webhook_url=ft.swanlab_lark_webhook_url, secret=ft.swanlab_lark_secret))
    init_kwargs = {
        "project": ft.swanlab_project,
        "workspace": ft.swanlab_workspace,
        "experiment_name": ft.swanlab_run_name,
        "mode": ft.swanlab_mode,
        "tags": ["lf-ray", ft.stage],
    }
    callback = SwanLabRunCallback(
        init_kwargs={key: value for key, value in init_kwargs.items() if value is not None},
        log_dir=ft.swanlab_logdir,
        api_key=ft.swanlab_api_key,
        notifications=notifications,
    )
    callback.update_config({group: without_secrets(values) for group, values in cfg.sections().items()})
    return callback
