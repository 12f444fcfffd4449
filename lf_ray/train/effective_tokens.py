"""`include_effective_tokens_per_second`: LLaMA-Factory's `effective_tokens_per_sec` training metric.

LLaMA-Factory's `calculate_tps` counts the training set's tokens (a pair's chosen and rejected tokens for dpo),
multiplies them by the epochs trained and divides by `train_runtime` and by the number of devices: the tokens
each device processed per second. lf-ray counts the tokens once, while preprocessing: the artifact's manifest
holds the real (non-padding) tokens of its train split, of every sequence a row holds (chosen and rejected for
rm and dpo, the KL sequence too for kto).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lf_ray.constants import DATASET_TRAIN_DIR
from lf_ray.errors import TrainError

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

METRIC = "effective_tokens_per_sec"


def effective_tokens_per_sec(train_tokens: int, metrics: Mapping[str, Any], world_size: int) -> float:
    """Tokens of the training data × epochs trained / train_runtime, per device (LLaMA-Factory's `calculate_tps`)."""
    return train_tokens * metrics["epoch"] / metrics["train_runtime"] / max(world_size, 1)


def train_split_tokens(dataset_path: str) -> int:
    """The train split's tokens, as the preprocess step counted them into the artifact's manifest."""
    from lf_ray.artifacts import read_manifest

    manifest = read_manifest(dataset_path) or {}
    tokens = manifest.get("splits", {}).get(DATASET_TRAIN_DIR, {}).get("tokens")
    if tokens is None:
        raise TrainError(
            f"`include_effective_tokens_per_second: true` needs the train split's token count, which the manifest "
            f"of {dataset_path} does not hold; preprocess again (`overwrite_cache: true`) or remove the key"
        )
    return int(tokens)


def with_effective_tokens_per_sec(
    metrics: Mapping[str, Any], cfg: LfRayConfig, dataset_path: str, world_size: int
) -> dict[str, Any]:
    """The training metrics, plus `effective_tokens_per_sec` when `include_effective_tokens_per_second` is on."""
    if not cfg.finetuning.include_effective_tokens_per_second:
        return dict(metrics)
    tokens = train_split_tokens(dataset_path)
    return {**metrics, METRIC: effective_tokens_per_sec(tokens, metrics, world_size)}
