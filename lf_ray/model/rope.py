"""`rope_scaling` (linear / dynamic / yarn / llama3): stretch a model's rotary position embeddings past the length it
was trained on, as LLaMA-Factory's `configure_rope` does.

The factor is ceil(cutoff_len / the model's original positions); when `cutoff_len` fits the model already, nothing
changes (LLaMA-Factory's rule; a warning says so). Unlike LLaMA-Factory, which uses a factor of 2 at inference,
lf-ray sizes the factor from `cutoff_len` in every step, and eval / export / serve steps inherit `cutoff_len` from
the step that trained the model, so they run it with the factor it was trained with. A model saved with scaling
keeps its original length (`original_max_position_embeddings`), so a re-scale starts from there.

transformers 5 keeps the RoPE settings in `config.rope_parameters` (with `rope_theta`); older configs in
`rope_scaling`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)

_ORIGINAL = "original_max_position_embeddings"


def _settings_key(config: PretrainedConfig) -> str:
    return "rope_parameters" if hasattr(config, "rope_parameters") else "rope_scaling"


def rope_overrides(config: PretrainedConfig, cfg: LfRayConfig) -> dict[str, Any]:
    """The config attributes `rope_scaling` changes (the RoPE settings, `max_position_embeddings`), or {}."""
    kind = cfg.model.rope_scaling
    if kind is None:
        return {}
    key = _settings_key(config)
    current = dict(getattr(config, key, None) or {})
    original = current.get(_ORIGINAL) if current.get("rope_type", "default") != "default" else None
    original = original or getattr(config, "max_position_embeddings", None)
    if original is None:
        logger.warning("`rope_scaling: %s`: %s has no max_position_embeddings; RoPE left as it is", kind, config)
        return {}
    length = cfg.data.cutoff_len
    if length <= original:
        logger.warning(
            "`rope_scaling: %s`: cutoff_len %d fits the model's %d positions, so RoPE is not scaled "
            "(raise cutoff_len to train on longer sequences)",
            kind,
            length,
            original,
        )
        return {}
    factor = float(math.ceil(length / original))
    settings = {**current, "rope_type": kind, "factor": factor}
    if kind in ("dynamic", "yarn", "llama3"):
        settings[_ORIGINAL] = original
    if kind == "llama3":
        settings.update(low_freq_factor=1.0, high_freq_factor=4.0)
    logger.info("RoPE: %s scaling x%g, %d -> %d positions", kind, factor, original, int(original * factor))
    return {key: settings, "max_position_embeddings": int(original * factor)}


def scale_rope(config: PretrainedConfig, cfg: LfRayConfig) -> None:
    for name, value in rope_overrides(config, cfg).items():
        setattr(config, name, value)
