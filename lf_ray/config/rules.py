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
from lf_ray.config.rules_tracking import TRACKING_RULES
from lf_ray.config.rules_training import TRAINING_RULES
from lf_ray.config.rules_tune import TUNE_RULES
from lf_ray.config.support import not_needed_notes, refusals
from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig

Rule = Callable[["LfRayConfig"], "str | None"]
RULES: tuple[Rule, ...] = (*DATA_RULES, *TRAINING_RULES, *TRACKING_RULES, *TUNE_RULES, *SERVE_RULES)


def resolve_defaults(cfg: LfRayConfig) -> LfRayConfig:
    """A copy of `cfg` with LLaMA-Factory's derived defaults filled in (the input is not changed):

    - `packing: null` → true when `neat_packing` is set, else `stage == "pt"`;
    - `media_dir: null` → `dataset_dir`;
    - `lora_alpha: null` → `lora_rank * 2`;
    - `resize_vocab` → true when the config adds tokens (`add_tokens`, `add_special_tokens`,
      `new_special_tokens_config`): LLaMA-Factory turns it on once a token is new; lf-ray decides from the config
      alone, so every step agrees without loading the tokenizer (a no-op when the tokens exist already).
    """
    data, finetuning, model = cfg.data, cfg.finetuning, cfg.model
    packing = data.packing
    if packing is None:
        packing = True if data.neat_packing else finetuning.stage == "pt"
    new_data = dataclasses.replace(data, packing=packing, media_dir=data.media_dir or data.dataset_dir)
    new_finetuning = dataclasses.replace(finetuning, lora_alpha=finetuning.lora_alpha or finetuning.lora_rank * 2)
    adds_tokens = bool(model.add_tokens or model.add_special_tokens or model.new_special_tokens_config)
    new_model = dataclasses.replace(model, resize_vocab=model.resize_vocab or adds_tokens)
    return dataclasses.replace(
        cfg, data=new_data, finetuning=new_finetuning, model=new_model, training=dict(cfg.training)
    )


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
    return not_needed_notes(cfg)


def prepare_config(
    path: str | None, overrides: Sequence[str] = (), base: Mapping[str, Any] | None = None
) -> LfRayConfig:
    """What every command runs on: the loaded config with derived defaults, checked against every rule."""
    cfg = resolve_defaults(load_config(path, overrides, base=base))
    validate_config(cfg)
    return cfg
