"""Cross-field rules about experiment tracking: the SwanLab keys (`use_swanlab` and the swanlab_* keys).

Messages name the keys without their values: two of them hold credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig

_SWANLAB_KEYS = (
    "swanlab_project",
    "swanlab_workspace",
    "swanlab_run_name",
    "swanlab_mode",
    "swanlab_api_key",
    "swanlab_logdir",
    "swanlab_lark_webhook_url",
    "swanlab_lark_secret",
)


def swanlab_keys_without_use_swanlab(cfg: LfRayConfig) -> str | None:
    """LLaMA-Factory reads the swanlab_* keys only under `use_swanlab`, and ignores them without a word otherwise."""
    if cfg.finetuning.use_swanlab:
        return None
    from lf_ray.config.schema import all_keys

    keys = all_keys()
    given = [f"`{key}`" for key in _SWANLAB_KEYS if getattr(cfg.finetuning, key) != keys[key].default]
    if given:
        return (
            f"{', '.join(given)} configure{'s' if len(given) == 1 else ''} SwanLab tracking, which `use_swanlab` "
            "leaves off; set `use_swanlab: true` or remove them"
        )
    return None


def lark_secret_without_webhook(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.swanlab_lark_secret and not ft.swanlab_lark_webhook_url:
        return (
            "`swanlab_lark_secret` signs the Lark notification of `swanlab_lark_webhook_url`, which is not set; set "
            "the webhook URL of your Lark bot, or remove the secret"
        )
    return None


def swanlab_logdir_not_local(cfg: LfRayConfig) -> str | None:
    from lf_ray import storage

    folder = cfg.finetuning.swanlab_logdir
    if folder and storage.is_uri(folder):
        return (
            f"`swanlab_logdir: {folder}`: SwanLab writes its run files to a local folder; give a local or "
            "shared-filesystem path, or remove it to write them under `output_dir` (uploaded with the outputs when "
            "that is a URI)"
        )
    return None


_KNOWN_TRACKERS = ("all", "none", "mlflow", "tensorboard", "wandb", "swanlab")


def unknown_tracker(cfg: LfRayConfig) -> str | None:
    """A `report_to` name no transformers integration has: found here, not when the workers build their trainers."""
    from lf_ray.tracking.trackers import report_to_list

    unknown = [name for name in report_to_list(cfg.get("report_to")) if name not in _KNOWN_TRACKERS]
    if not unknown:
        return None
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    unknown = [name for name in unknown if name not in INTEGRATION_TO_CALLBACK]
    if unknown:
        return (
            f"`report_to: {unknown[0]}` is not a tracker transformers integrates; use any of "
            f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))}, `all` or `none`"
        )
    return None


TRACKING_RULES = (
    swanlab_keys_without_use_swanlab,
    lark_secret_without_webhook,
    swanlab_logdir_not_local,
    unknown_tracker,
)
