"""lf-ray's configuration: LLaMA-Factory's argument groups, YAML + `key=value` loading, cross-field rules.

    cfg = prepare_config("cfg.yaml", ["learning_rate=1e-4"])  # load, derive defaults, check every rule
    cfg.finetuning.lora_target    # ["all"]
    cfg.get("learning_rate")      # 0.0001, from the `training` dict

Importing this package is cheap; transformers is imported only when training keys are first needed.
"""

from lf_ray.config.data_args import DataArguments
from lf_ray.config.finetuning_args import FinetuningArguments
from lf_ray.config.generating_args import GeneratingArguments
from lf_ray.config.loader import (
    LfRayConfig,
    build_config,
    load_config,
    load_layers,
    parse_overrides,
    read_config_file,
)
from lf_ray.config.model_args import ModelArguments
from lf_ray.config.ray_args import RAY_KEY_ALIASES, RayArguments
from lf_ray.config.rules import config_warnings, find_violations, prepare_config, resolve_defaults, validate_config
from lf_ray.config.schema import GROUPS, KEY_ALIASES, field_help, group_of
from lf_ray.config.serve_args import ServeArguments
from lf_ray.config.training_args import LF_TRAINING_KEYS, training_key_table

__all__ = [
    "GROUPS",
    "KEY_ALIASES",
    "LF_TRAINING_KEYS",
    "RAY_KEY_ALIASES",
    "DataArguments",
    "FinetuningArguments",
    "GeneratingArguments",
    "LfRayConfig",
    "ModelArguments",
    "RayArguments",
    "ServeArguments",
    "build_config",
    "config_warnings",
    "field_help",
    "find_violations",
    "group_of",
    "load_config",
    "load_layers",
    "parse_overrides",
    "prepare_config",
    "read_config_file",
    "resolve_defaults",
    "training_key_table",
    "validate_config",
]
