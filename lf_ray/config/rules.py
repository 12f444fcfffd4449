"""Cross-field rules: `resolve_defaults` fills derived defaults, `validate_config` reports every violation.

Each rule is one small function `rule(cfg) -> str | None`, returning a message that says what is wrong,
which keys, and the fix. The rules mirror LLaMA-Factory's checks (`hparams/parser.py` and the dataclasses'
`__post_init__`) that apply to lf-ray, plus lf-ray's own (Ray, transformers 5). Rules that need a
training-time fact (device, world size, ZeRO stage in a file) are left to the train step.

Use: `cfg = prepare_config(path, overrides)` (load, resolve defaults, validate).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lf_ray.config.loader import load_config
from lf_ray.config.rules_data import DATA_RULES
from lf_ray.config.rules_serve import SERVE_RULES
from lf_ray.config.rules_training import TRAINING_RULES
from lf_ray.config.rules_tune import TUNE_RULES
from lf_ray.config.support import not_needed_notes, refusals
from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig

Rule = Callable[["LfRayConfig"], "str | None"]
RULES: tuple[Rule, ...] = (*DATA_RULES, *TRAINING_RULES, *TUNE_RULES, *SERVE_RULES)


def resolve_defaults(cfg: LfRayConfig) -> LfRayConfig:
    """A copy of `cfg` with LLaMA-Factory's derived defaults filled in (the input is not changed):

    - `packing: null` → true when `neat_packing` is set, else `stage == "pt"`;
    - `media_dir: null` → `dataset_dir`;
    - `lora_alpha: null` → `lora_rank * 2`.
    """
    data, finetuning = cfg.data, cfg.finetuning
    packing = data.packing
    if packing is None:
        packing = True if data.neat_packing else finetuning.stage == "pt"
    new_data = dataclasses.replace(data, packing=packing, media_dir=data.media_dir or data.dataset_dir)
    new_finetuning = dataclasses.replace(finetuning, lora_alpha=finetuning.lora_alpha or finetuning.lora_rank * 2)
    return dataclasses.replace(cfg, data=new_data, finetuning=new_finetuning, training=dict(cfg.training))


def find_violations(cfg: LfRayConfig) -> list[str]:
    """The message of every rule `cfg` breaks, in rule order."""
    return [*refusals(cfg), *(message for rule in RULES if (message := rule(cfg)) is not None)]


def validate_config(cfg: LfRayConfig) -> None:
    """Raise one `ConfigError` listing every rule `cfg` breaks; return quietly when it breaks none."""
    violations = find_violations(cfg)
    if not violations:
        return
    where = cfg.source or "the config"
    if len(violations) == 1:
        raise ConfigError(f"{where}: {violations[0]}")
    listing = "\n".join(f"  - {message}" for message in violations)
    raise ConfigError(f"{len(violations)} problems in {where}:\n{listing}")


def config_warnings(cfg: LfRayConfig) -> list[str]:
    """Things that are allowed but probably not what the user meant; the CLI logs them."""
    notes = not_needed_notes(cfg)
    if cfg.model.resize_vocab and cfg.finetuning.finetuning_type == "lora" and not cfg.finetuning.additional_target:
        notes.append(
            "`resize_vocab: true` with LoRA: add the embedding layers to `additional_target` "
            "(e.g. embed_tokens,lm_head) to make the added tokens trainable"
        )
    return notes


def prepare_config(
    path: str | None, overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> LfRayConfig:
    """What every command runs on: the loaded config with derived defaults, checked against every rule."""
    cfg = resolve_defaults(load_config(path, overrides, base=base))
    validate_config(cfg)
    return cfg
