"""The training-arguments object of a stage, built from an lf-ray config.

    args = build_training_arguments(cfg, output_dir="/tmp/run/checkpoints")

Which class: transformers' `Seq2SeqTrainingArguments` for pt / sft / ppo (lf-ray's own loop), TRL's `RewardConfig`
for rm, `KTOConfig` for kto, `GRPOConfig` for grpo, and for dpo the config of the TRL trainer that owns `pref_loss`:
`DPOConfig` (sigmoid, hinge, ipo, kto_pair), `ORPOConfig` (orpo) or `CPOConfig` (simpo), the last two from
`trl.experimental`.

What goes in, later entries winning:
1. the training keys the config sets (`cfg.training`), less the ones this class does not have;
2. transformers' defaults where TRL changed them (learning rate 1e-6, logging every 10 steps, gradient
   checkpointing, bf16), so a LLaMA-Factory YAML means the same thing for every stage;
3. LLaMA-Factory keys transformers 5 dropped (`LF_TRAINING_KEYS`): `warmup_ratio` becomes a ratio in
   `warmup_steps`, `disable_shuffling` a sequential sampler; `logging_dir` and `fp8` are environment variables
   (see `training_environment`); `overwrite_output_dir` is the launcher's resume rule; `save_safetensors` is
   always on in transformers 5;
4. the stage's own keys (`pref_beta` → `beta`, `pref_loss` → `loss_type`, ...), LLaMA-Factory's GaLore /
   APOLLO keys as transformers' own low-rank optimizers (`low_rank_optimizer`), `enable_liger_kernel` as
   `use_liger_kernel`;
5. fixed choices: `output_dir`, `remove_unused_columns=False` (collators pick their columns), `report_to`
   (default "none"), and no mixed precision on a machine without an accelerator;
6. `overrides` (what the launcher decides: a resolved DeepSpeed dict, a Ray storage path, ...).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lf_ray.config.training_args import LF_TRAINING_KEYS
from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from lf_ray.config import FinetuningArguments, LfRayConfig

logger = logging.getLogger(__name__)

FP8_BACKENDS = {"te": "TE", "msamp": "MSAMP", "torchao": "AO"}
"""`fp8_backend` → accelerate's `ACCELERATE_FP8_BACKEND` (`auto` leaves the choice to accelerate)."""

HAND_WRITTEN_DPO_LOSSES = ("cdpo", "kto_pair")
"""DPO losses TRL 1.16 dropped; `stages.dpo` computes them (cdpo: sigmoid with `dpo_label_smoothing`)."""


def training_args_class(finetuning: FinetuningArguments) -> type[TrainingArguments]:
    """The arguments class of the trainer that runs `finetuning.stage` (and, for dpo, `pref_loss`)."""
    stage = finetuning.stage
    if stage in ("pt", "sft", "ppo"):
        from transformers import Seq2SeqTrainingArguments

        return Seq2SeqTrainingArguments
    if stage == "rm":
        from trl import RewardConfig

        return RewardConfig
    if stage == "kto":
        from trl import KTOConfig

        return KTOConfig
    if stage == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    if stage == "dpo" and finetuning.pref_loss == "orpo":
        return _experimental("orpo", "ORPOConfig")
    if stage == "dpo" and finetuning.pref_loss == "simpo":
        return _experimental("cpo", "CPOConfig")
    if stage == "dpo":
        from trl import DPOConfig

        return DPOConfig
    raise ConfigError(f"`stage: {stage}` has no trainer in lf-ray yet; use one of pt, sft, rm, dpo, kto, grpo, ppo")


def _experimental(module: str, name: str) -> type:
    """A class from `trl.experimental.<module>`, without TRL's "experimental API" import warning."""
    import importlib

    from trl.import_utils import TRLExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TRLExperimentalWarning)
        return getattr(importlib.import_module(f"trl.experimental.{module}"), name)


def build_training_arguments(
    cfg: LfRayConfig, *, output_dir: str, overrides: Mapping[str, Any] | None = None
) -> TrainingArguments:
    """The stage's arguments object (see the module docstring for what goes in and in which order)."""
    cls = training_args_class(cfg.finetuning)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    values = _configured_values(cfg, fields)
    values.update(_transformers_defaults(cfg, cls))
    values.update(_lf_training_keys(cfg, fields))
    values.update(_stage_values(cfg, fields))
    values.update(low_rank_optimizer(cfg))
    if cfg.model.enable_liger_kernel:  # transformers patches the model with Liger's Triton kernels
        values["use_liger_kernel"] = True
    values.update(output_dir=output_dir, remove_unused_columns=False, report_to=cfg.get("report_to") or "none")
    values.update(precision_flags(cfg, has_accelerator=_has_accelerator()))
    values.update(overrides or {})
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"{cls.__name__} has no field {', '.join(f'`{key}`' for key in unknown)} (stage "
            f"`{cfg.finetuning.stage}`); remove it from the overrides"
        )
    return cls(**values)


ALL_BUT_THE_HEADS = r".*(?<!lm_head)(?<!score)(?<!classifier)"
"""`galore_target: all` / `apollo_target: all`: every Linear layer but the output heads (LLaMA-Factory's
`find_all_linear_modules`), as the regex transformers matches module names against."""

_GALORE_OPTIM = {
    "adamw_torch": "galore_adamw",
    "adamw_torch_fused": "galore_adamw",  # transformers' default `optim`
    "adamw_bnb_8bit": "galore_adamw_8bit",
    "adafactor": "galore_adafactor",
}
"""`optim` → its GaLore variant, as LLaMA-Factory picks GaLoreAdamW / GaLoreAdamW8bit / GaLoreAdafactor."""


def low_rank_optimizer(cfg: LfRayConfig) -> dict[str, Any]:
    """`use_galore` / `use_apollo` as transformers' `galore_*` / `apollo_adamw` optimizers (galore-torch and
    apollo-torch), with LLaMA-Factory's rank, update interval, scale and projection, on its target modules."""
    ft = cfg.finetuning
    if ft.use_galore:
        optim = str(cfg.get("optim"))
        if optim not in _GALORE_OPTIM:
            raise ConfigError(
                f"`use_galore` with `optim: {optim}`: GaLore comes in {', '.join(_GALORE_OPTIM)} variants; "
                "set `optim` to one of them"
            )
        name = _GALORE_OPTIM[optim]
        settings = {"rank": ft.galore_rank, "update_proj_gap": ft.galore_update_interval, "scale": ft.galore_scale}
        settings["proj_type"] = ft.galore_proj_type
        targets = ft.galore_target
    elif ft.use_apollo:
        name = "apollo_adamw"
        settings = {"rank": ft.apollo_rank, "update_proj_gap": ft.apollo_update_interval, "scale": ft.apollo_scale}
        settings |= {"proj": ft.apollo_proj, "proj_type": ft.apollo_proj_type, "scale_type": ft.apollo_scale_type}
        targets = ft.apollo_target
    else:
        return {}
    return {
        "optim": name,
        "optim_args": ",".join(f"{key}={value}" for key, value in settings.items()),
        "optim_target_modules": ALL_BUT_THE_HEADS if list(targets) == ["all"] else list(targets),
    }


def _configured_values(cfg: LfRayConfig, fields: set[str]) -> dict[str, Any]:
    values = {}
    for key, value in cfg.training.items():
        if key in fields:
            values[key] = value
        elif key not in LF_TRAINING_KEYS:  # e.g. `generation_max_length` (Seq2Seq only) in a dpo config
            logger.warning("`%s` does not apply to stage `%s`; ignored", key, cfg.finetuning.stage)
    return values


def _transformers_defaults(cfg: LfRayConfig, cls: type) -> dict[str, Any]:
    """transformers' value (or the configured one) for each field whose default TRL changed."""
    from transformers import TrainingArguments

    base = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    return {
        f.name: cfg.get(f.name)
        for f in dataclasses.fields(cls)
        if f.name in base and _default(f) != _default(base[f.name])
    }


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _lf_training_keys(cfg: LfRayConfig, fields: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "warmup_ratio" not in fields and cfg.training.get("warmup_ratio"):  # transformers 5: below 1 is a ratio
        values["warmup_steps"] = cfg.training["warmup_ratio"]
    if cfg.finetuning.disable_shuffling and "train_sampling_strategy" not in cfg.training:
        values["train_sampling_strategy"] = "sequential"
    return values


def _stage_values(cfg: LfRayConfig, fields: set[str]) -> dict[str, Any]:
    ft = cfg.finetuning
    values: dict[str, Any] = {}
    if "max_length" in fields:  # rows are already cut to cutoff_len by the preprocess step
        values["max_length"] = cfg.data.cutoff_len
    if cfg.data.eval_num_beams and "generation_num_beams" in fields:  # beams of predict_with_generate
        values["generation_num_beams"] = cfg.data.eval_num_beams
    if ft.stage in ("dpo", "kto") and "prediction_loss_only" not in cfg.training:
        # TRL's DPO / KTO trainers log their metrics themselves; asking for predictions makes them recompute
        # full-vocabulary logits for every evaluation batch
        values["prediction_loss_only"] = True
    if ft.stage == "dpo":
        values.update(_preference_values(ft))
    elif ft.stage == "grpo":
        values.update(grpo_values(cfg))
    elif ft.stage == "kto":  # `pref_ftx` is dpo's (`rules_training.keys_of_other_stages`)
        values.update(
            beta=ft.pref_beta, desirable_weight=ft.kto_chosen_weight, undesirable_weight=ft.kto_rejected_weight
        )
    return values


def grpo_values(cfg: LfRayConfig) -> dict[str, Any]:
    """grpo keys as `GRPOConfig`'s: the group, the loss, the rewards' weights, and sampling from the generating
    keys (as LLaMA-Factory's PPO samples)."""
    ft, generating = cfg.finetuning, cfg.generating
    return {
        "num_generations": ft.num_generations,
        "max_completion_length": ft.max_completion_length,
        "temperature": generating.temperature,
        "top_p": generating.top_p,
        "top_k": generating.top_k,
        "repetition_penalty": generating.repetition_penalty,
        "beta": ft.grpo_beta,
        "epsilon": ft.grpo_epsilon,
        "epsilon_high": ft.grpo_epsilon_high,
        "loss_type": ft.grpo_loss_type,
        "scale_rewards": ft.grpo_scale_rewards,
        "num_iterations": ft.grpo_num_iterations,
        "mask_truncated_completions": ft.mask_truncated_completions,
        "reward_weights": ft.reward_weights,
        **rollout_values(cfg),
    }


def rollout_values(cfg: LfRayConfig) -> dict[str, Any]:
    """Where grpo's completions are sampled: TRL's vLLM server (`grpo_vllm_server`), vLLM colocated in each worker
    (`infer_backend: vllm`, with LLaMA-Factory's `vllm_gpu_util` and `vllm_maxlen`), else transformers' generate."""
    if cfg.finetuning.grpo_vllm_server:
        return {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": cfg.finetuning.grpo_vllm_server}
    if cfg.model.infer_backend == "vllm":
        return {
            "use_vllm": True,
            "vllm_mode": "colocate",
            "vllm_gpu_memory_utilization": cfg.model.vllm_gpu_util,
            "vllm_max_model_length": cfg.model.vllm_maxlen,
        }
    return {}


def _preference_values(ft: FinetuningArguments) -> dict[str, Any]:
    """dpo keys: TRL's loss types for `pref_loss`, the supervised term (`pref_ftx`) and BCO (`pref_bco_weight`)."""
    if ft.pref_loss == "orpo":
        _refuse_ftx(ft, "ORPO's loss already holds its supervised (NLL) term")
        return {"beta": ft.pref_beta}
    if ft.pref_loss == "simpo":
        return {"beta": ft.pref_beta, "loss_type": "simpo", "simpo_gamma": ft.simpo_gamma, "cpo_alpha": ft.pref_ftx}
    main = "cdpo" if ft.pref_loss == "sigmoid" and ft.dpo_label_smoothing > 1e-6 else ft.pref_loss
    values: dict[str, Any] = {"beta": ft.pref_beta, "label_smoothing": ft.dpo_label_smoothing, "ld_alpha": ft.ld_alpha}
    loss_type, weights = [main], [1.0]
    if main in HAND_WRITTEN_DPO_LOSSES:
        _refuse_with_hand_written_loss(ft, main)
    if ft.pref_bco_weight > 1e-6:  # LLaMA-Factory re-weights (loss + w * bco) / (1 + w)
        loss_type.append("bco_pair")
        weights = [1 / (1 + ft.pref_bco_weight), ft.pref_bco_weight / (1 + ft.pref_bco_weight)]
    if ft.pref_ftx > 1e-6:
        loss_type.append("sft")
        weights.append(ft.pref_ftx)
    values.update(loss_type=loss_type, loss_weights=weights)
    return values


def _refuse_with_hand_written_loss(ft: FinetuningArguments, main: str) -> None:
    used = [key for key in ("pref_bco_weight", "ld_alpha") if getattr(ft, key)]
    if used:
        loss = "`pref_loss: sigmoid` with `dpo_label_smoothing`" if main == "cdpo" else f"`pref_loss: {main}`"
        raise ConfigError(
            f"{' and '.join(f'`{key}`' for key in used)} cannot be combined with {loss} (a loss lf-ray computes "
            "itself, TRL 1.16 having dropped it); remove them"
        )


def _refuse_ftx(ft: FinetuningArguments, why: str) -> None:
    if ft.pref_ftx > 1e-6:
        raise ConfigError(
            f"`pref_ftx: {ft.pref_ftx}` is not supported with `pref_loss: {ft.pref_loss}`: {why}; remove `pref_ftx`"
        )


def precision_flags(cfg: LfRayConfig, *, has_accelerator: bool) -> dict[str, bool]:
    """`bf16` / `fp16` as configured (transformers' default: off); both off without a GPU, where bf16 autocast
    is many times slower and fp16 unsupported."""
    if not has_accelerator:
        if cfg.get("bf16") or cfg.get("fp16"):
            logger.info("no GPU: training in float32 (bf16 / fp16 are turned off on CPU)")
        return {"bf16": False, "fp16": False}
    return {"bf16": bool(cfg.get("bf16")), "fp16": bool(cfg.get("fp16"))}


def _has_accelerator() -> bool:
    import torch

    return torch.accelerator.is_available()


def training_environment(cfg: LfRayConfig) -> dict[str, str]:
    """Environment variables the training process must set for keys transformers 5 moved out of its arguments:
    `logging_dir` (TensorBoard) and `fp8` (accelerate's FP8 recipe)."""
    env: dict[str, str] = {}
    if cfg.training.get("logging_dir"):
        env["TENSORBOARD_LOGGING_DIR"] = str(cfg.training["logging_dir"])
    if cfg.training.get("fp8"):
        env["ACCELERATE_MIXED_PRECISION"] = "fp8"
        backend = FP8_BACKENDS.get(str(cfg.training.get("fp8_backend", "auto")).lower())
        if backend:
            env["ACCELERATE_FP8_BACKEND"] = backend
    return env
