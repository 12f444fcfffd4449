"""Cross-field rules about the model, the datasets and how they are cut, mixed, packed and evaluated.

Each rule returns None or one message: what is wrong, which keys, how to fix it. `rules.validate_config`
runs them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig

_EPS = 1e-6


def model_name_or_path_missing(cfg: LfRayConfig) -> str | None:
    if not cfg.model.model_name_or_path:
        return (
            "`model_name_or_path` is not set; give a Hugging Face id, a local path, "
            "or a builtin model such as `builtin:tiny-llama`"
        )
    return None


def cutoff_len_not_positive(cfg: LfRayConfig) -> str | None:
    if cfg.data.cutoff_len <= 0:
        return f"`cutoff_len` is {cfg.data.cutoff_len}; it must be a positive number of tokens, e.g. 2048"
    return None


def max_samples_not_positive(cfg: LfRayConfig) -> str | None:
    if cfg.data.max_samples is not None and cfg.data.max_samples <= 0:
        return f"`max_samples` is {cfg.data.max_samples}; use a positive number, or remove it to keep every example"
    return None


def neat_packing_without_packing(cfg: LfRayConfig) -> str | None:
    if cfg.data.neat_packing and cfg.data.packing is False:
        return (
            "`neat_packing: true` packs sequences but `packing: false` turns packing off; "
            "remove `packing: false` or set `neat_packing: false`"
        )
    return None


def neat_packing_outside_sft(cfg: LfRayConfig) -> str | None:
    if cfg.data.neat_packing and cfg.finetuning.stage != "sft":
        return f"`neat_packing` only works with `stage: sft` (got `stage: {cfg.finetuning.stage}`); remove it"
    return None


def prompt_masking_outside_sft(cfg: LfRayConfig) -> str | None:
    keys = [key for key in ("train_on_prompt", "mask_history") if getattr(cfg.data, key)]
    if keys and cfg.finetuning.stage != "sft":
        names = " and ".join(f"`{key}`" for key in keys)
        return f"{names} only apply to `stage: sft` (got `stage: {cfg.finetuning.stage}`); remove them"
    return None


def mask_history_with_train_on_prompt(cfg: LfRayConfig) -> str | None:
    if cfg.data.mask_history and cfg.data.train_on_prompt:
        return (
            "`mask_history: true` (train on the last turn only) contradicts `train_on_prompt: true` "
            "(train on the prompt too); set one of them to false"
        )
    return None


def streaming_without_max_steps(cfg: LfRayConfig) -> str | None:
    max_steps = cfg.get("max_steps")
    if cfg.data.streaming and max_steps <= 0:
        return (
            f"`streaming: true` gives a dataset of unknown length, so `max_steps` must be a positive number "
            f"(got {max_steps}); set `max_steps`, e.g. 1000"
        )
    return None


def streaming_with_fractional_val_size(cfg: LfRayConfig) -> str | None:
    if cfg.data.streaming and _EPS < cfg.data.val_size < 1:
        return (
            f"`streaming: true` cannot split off a fraction of a stream: `val_size` must be a whole number "
            f"of examples (got {cfg.data.val_size}), e.g. `val_size: 500`"
        )
    return None


def streaming_with_max_samples(cfg: LfRayConfig) -> str | None:
    if cfg.data.streaming and cfg.data.max_samples is not None:
        return "`max_samples` cannot truncate a stream (`streaming: true`); remove one of them"
    return None


def val_size_out_of_range(cfg: LfRayConfig) -> str | None:
    val_size = cfg.data.val_size
    if val_size < 0 or (val_size >= 1 and not float(val_size).is_integer()):
        return f"`val_size` is {val_size}; use a fraction in [0, 1) or a whole number of examples"
    return None


def val_size_with_eval_dataset(cfg: LfRayConfig) -> str | None:
    if cfg.data.val_size > _EPS and cfg.data.eval_dataset:
        return (
            "`val_size` and `eval_dataset` both define the evaluation set; keep one "
            "(`val_size` splits it off `dataset`, `eval_dataset` names separate datasets)"
        )
    return None


def val_size_without_dataset(cfg: LfRayConfig) -> str | None:
    if cfg.data.val_size > _EPS and not cfg.data.dataset:
        return "`val_size` splits the evaluation set off `dataset`, but `dataset` is not set; set `dataset`"
    return None


def training_without_dataset(cfg: LfRayConfig) -> str | None:
    if cfg.get("do_train") and not cfg.data.dataset:
        return (
            f"`do_train: true` (stage `{cfg.finetuning.stage}`) needs training data: set `dataset` "
            "to one or more names from dataset_info.json, comma-separated"
        )
    return None


def evaluation_without_eval_data(cfg: LfRayConfig) -> str | None:
    triggers = [f"`{key}: true`" for key in ("do_eval", "do_predict") if cfg.get(key)]
    strategy = cfg.get("eval_strategy")
    if str(strategy) != "no":
        triggers.append(f"`eval_strategy: {strategy}`")
    if triggers and not cfg.data.eval_dataset and cfg.data.val_size <= _EPS:
        return (
            f"{' and '.join(triggers)} need evaluation data: set `val_size` (e.g. 0.1) or `eval_dataset`, "
            "or set `eval_strategy: no`"
        )
    return None


def interleave_probs_with_concat(cfg: LfRayConfig) -> str | None:
    if cfg.data.interleave_probs is not None and cfg.data.mix_strategy == "concat":
        return (
            "`interleave_probs` only applies to interleaved mixing; set `mix_strategy: interleave_under` "
            "(or `interleave_over`), or remove `interleave_probs`"
        )
    return None


def interleave_probs_count(cfg: LfRayConfig) -> str | None:
    probs = cfg.data.interleave_probs
    if probs is None:
        return None
    for key in ("dataset", "eval_dataset"):
        names = getattr(cfg.data, key)
        if names and len(names) != len(probs):
            return (
                f"`interleave_probs` has {len(probs)} values but `{key}` names {len(names)} datasets "
                f"({', '.join(names)}); give one probability per dataset"
            )
    return None


def interleave_probs_not_a_distribution(cfg: LfRayConfig) -> str | None:
    probs = cfg.data.interleave_probs
    if probs and (any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > _EPS):
        return (
            f"`interleave_probs` {probs} sum to {sum(probs):g}; they are sampling probabilities: "
            "each >= 0 and together 1"
        )
    return None


def quantization_without_lora(cfg: LfRayConfig) -> str | None:
    if cfg.model.quantization_bit is not None and cfg.finetuning.finetuning_type != "lora":
        return (
            f"`quantization_bit: {cfg.model.quantization_bit}` only works with LoRA "
            f"(got `finetuning_type: {cfg.finetuning.finetuning_type}`); remove `quantization_bit` "
            "or use `finetuning_type: lora` (QLoRA)"
        )
    return None


_OTHER_QUANTIZATION = {
    "hqq": "transformers 5 cannot load HQQ weights yet: its loader raises NotImplementedError",
    "eetq": "EETQ's kernels are CUDA-only",
    "gptq": "GPTQ and AWQ are pre-quantized checkpoints, whose kernels (gptqmodel, autoawq) build for CUDA only",
    "awq": "GPTQ and AWQ are pre-quantized checkpoints, whose kernels (gptqmodel, autoawq) build for CUDA only",
}
"""Why each other `quantization_method` is refused (checked on transformers 5.25 and this CPU machine)."""


def quantization_not_bnb(cfg: LfRayConfig) -> str | None:
    model = cfg.model
    if model.quantization_bit is None:
        return None
    if model.quantization_method != "bnb":
        why = _OTHER_QUANTIZATION.get(model.quantization_method, "lf-ray has not been tested with it")
        return (
            f"`quantization_method: {model.quantization_method}` quantizes with a library lf-ray does not drive yet "
            f"({why}); use `quantization_method: bnb` (bitsandbytes, 4 or 8 bits, CPU or GPU)"
        )
    if model.quantization_bit not in (4, 8):
        return f"`quantization_bit: {model.quantization_bit}`: bitsandbytes quantizes to 4 or 8 bits; use 4 or 8"
    return None


def quantization_with_pissa_init(cfg: LfRayConfig) -> str | None:
    if cfg.model.quantization_bit is not None and cfg.finetuning.pissa_init:
        return "`pissa_init` cannot initialize PiSSA on a quantized model; initialize it unquantized first"
    return None


def quantization_with_resize_vocab(cfg: LfRayConfig) -> str | None:
    if cfg.model.quantization_bit is not None and cfg.model.resize_vocab:
        return "`resize_vocab` cannot resize the embeddings of a quantized model; remove one of them"
    return None


def quantization_with_many_adapters(cfg: LfRayConfig) -> str | None:
    adapters = cfg.model.adapter_name_or_path or []
    if cfg.model.quantization_bit is not None and len(adapters) > 1:
        return "a quantized model takes a single adapter in `adapter_name_or_path`; merge the adapters first"
    return None


def special_tokens_config_unreadable(cfg: LfRayConfig) -> str | None:
    from lf_ray.model.new_tokens import new_tokens

    try:
        new_tokens(cfg)
    except ConfigError as err:
        return str(err)
    return None


def description_init_without_descriptions(cfg: LfRayConfig) -> str | None:
    model = cfg.model
    if model.init_special_tokens != "noise_init" and not model.new_special_tokens_config:
        return (
            f"`init_special_tokens: {model.init_special_tokens}` starts each new token from its description, "
            "which `new_special_tokens_config` gives (a YAML file of token: description); set it, or use noise_init"
        )
    return None


def adapter_without_adapter_method(cfg: LfRayConfig) -> str | None:
    if cfg.model.adapter_name_or_path and cfg.finetuning.finetuning_type != "lora":
        return (
            f"`adapter_name_or_path` loads LoRA adapters, but `finetuning_type` is "
            f"`{cfg.finetuning.finetuning_type}`; set `finetuning_type: lora` or remove the adapters"
        )
    return None


DATA_RULES = (
    model_name_or_path_missing,
    cutoff_len_not_positive,
    max_samples_not_positive,
    neat_packing_without_packing,
    neat_packing_outside_sft,
    prompt_masking_outside_sft,
    mask_history_with_train_on_prompt,
    streaming_without_max_steps,
    streaming_with_fractional_val_size,
    streaming_with_max_samples,
    val_size_out_of_range,
    val_size_with_eval_dataset,
    val_size_without_dataset,
    training_without_dataset,
    evaluation_without_eval_data,
    interleave_probs_with_concat,
    interleave_probs_count,
    interleave_probs_not_a_distribution,
    quantization_without_lora,
    quantization_not_bnb,
    quantization_with_pissa_init,
    quantization_with_resize_vocab,
    quantization_with_many_adapters,
    special_tokens_config_unreadable,
    description_init_without_descriptions,
    adapter_without_adapter_method,
)
