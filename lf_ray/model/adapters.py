"""Make the right parameters trainable: `full`, `freeze` (LLaMA-Factory's layer / module choice) or `lora` (PEFT).

`apply_finetuning` is LLaMA-Factory's `init_adapter`. Everything a config can get wrong about the model
(a LoRA target or freeze module it does not have, a missing adapter folder, more freeze layers than the model
has) is found here, before any training step runs, and raised with the value received and the fix.

Where lf-ray differs from LLaMA-Factory, on purpose:
- freeze modules match whole name parts: `freeze_extra_modules: norm` trains `model.norm`, not every
  `input_layernorm`; the layer index is the first number in a parameter name, so `experts.1` inside layer 5
  is not taken for layer 1;
- `lora_target: all,embed_tokens` adds `embed_tokens` to every linear layer (LLaMA-Factory drops `all` there);
- a sequence-classification model (the reward model) keeps its `score` / `classifier` head trainable in
  freeze tuning, as PEFT does for LoRA.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray.errors import ConfigError, ModelError
from lf_ray.model.loader import looks_like_path, resolve_adapter_path

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, TrainingArguments

    from lf_ray.config import FinetuningArguments, LfRayConfig

logger = logging.getLogger(__name__)

# PEFT 0.21 still reads transformers' deprecated `is_gradient_checkpointing` on every PeftModel it builds.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

OUTPUT_HEADS = frozenset({"lm_head", "score", "classifier"})
"""Last layers that map hidden states to logits or rewards: never a LoRA target under `lora_target: all`."""

_VALUE_HEADS = ("score", "classifier")
_LAYER_INDEX = re.compile(r"\.(\d+)\.")
_QUANTIZED_LINEAR = ("Linear4bit", "Linear8bitLt")


# --- module names ------------------------------------------------------------------------------------------


def _is_linear(module: Any) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) or type(module).__name__ in _QUANTIZED_LINEAR


def _is_lora_adaptable(module: Any) -> bool:
    """Layer types PEFT's LoRA can wrap (Linear, Embedding, convolutions, GPT-2's Conv1D)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    adaptable = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, Conv1D)
    return isinstance(module, adaptable) or type(module).__name__ in _QUANTIZED_LINEAR


def _linear_names(model: PreTrainedModel) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)})


def find_all_linear_modules(model: PreTrainedModel) -> list[str]:
    """Short names (`q_proj`, ...) of every Linear layer except the output head: `lora_target: all`."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if _is_linear(module) and not OUTPUT_HEADS.intersection(name.split("."))
    }
    return sorted(names)


def _module_short_names(model: PreTrainedModel) -> list[str]:
    parts = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    return sorted(part for part in parts if not part.isdigit())


def _is_sequence_classifier(model: Any) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def _num_layers(model: PreTrainedModel) -> int:
    config = getattr(model.config, "text_config", None) or model.config
    for key in ("num_hidden_layers", "num_layers", "n_layer"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise ModelError(
        f"{type(model).__name__} has no layer count in its config (num_hidden_layers / num_layers / n_layer), "
        "so freeze tuning cannot pick layers. Fix: use `finetuning_type: lora` or `full`."
    )


# --- full and freeze ---------------------------------------------------------------------------------------


def _setup_full(model: PreTrainedModel) -> None:
    logger.info("Fine-tuning method: full")
    model.requires_grad_(True)


def _freeze_layer_ids(ft: FinetuningArguments, num_layers: int, model_name: str) -> range:
    count = ft.freeze_trainable_layers
    if ft.use_llama_pro:  # the expanded blocks: every `stride`-th layer
        if count <= 0 or num_layers % count:
            raise ConfigError(
                f"`use_llama_pro` trains {count} expanded blocks, but {model_name} has {num_layers} layers, "
                f"which {count} does not divide. Fix: set `freeze_trainable_layers` to a positive divisor of "
                f"{num_layers} (the number of blocks added by the expansion)."
            )
        stride = num_layers // count
        return range(stride - 1, num_layers, stride)
    if abs(count) > num_layers:
        side = "last" if count > 0 else "first"
        raise ConfigError(
            f"`freeze_trainable_layers: {count}` asks for the {side} {abs(count)} layers, but {model_name} has only "
            f"{num_layers}. Fix: use a number from -{num_layers} to {num_layers} (positive: the last n layers, "
            "negative: the first n)."
        )
    return range(num_layers - count, num_layers) if count > 0 else range(-count)


def _split_param_name(name: str) -> tuple[int | None, list[str]]:
    """`model.layers.1.mlp.up_proj.weight` -> (1, ["mlp", ...]); outside the layers -> (None, module parts)."""
    match = _LAYER_INDEX.search(name)
    if match:
        return int(match.group(1)), name[match.end() :].split(".")[:-1]
    return None, name.split(".")[:-1]


def _check_freeze_modules(model: PreTrainedModel, modules: list[str], extras: list[str]) -> None:
    block_parts, outside_parts = set(), set()
    for name, _ in model.named_parameters():
        layer, parts = _split_param_name(name)
        if layer is None:
            outside_parts.update(parts)
        elif parts:
            block_parts.add(parts[0])
    model_name = type(model).__name__
    bad = [m for m in modules if m != "all" and m not in block_parts]
    if bad:
        raise ConfigError(
            f"`freeze_trainable_modules` names {', '.join(bad)}, which no layer of {model_name} has. "
            f"Fix: use `all` or some of: {', '.join(sorted(block_parts))}."
        )
    bad = [m for m in extras if m not in outside_parts]
    if bad:
        raise ConfigError(
            f"`freeze_extra_modules` names {', '.join(bad)}, which {model_name} has nowhere outside its layers. "
            f"Fix: use some of: {', '.join(sorted(outside_parts))}."
        )


def _setup_freeze(model: PreTrainedModel, ft: FinetuningArguments) -> None:
    logger.info("Fine-tuning method: freeze")
    layer_ids = set(_freeze_layer_ids(ft, _num_layers(model), type(model).__name__))
    modules = list(ft.freeze_trainable_modules or ["all"])
    extras = list(ft.freeze_extra_modules or [])
    _check_freeze_modules(model, modules, extras)
    if _is_sequence_classifier(model):
        extras += [head for head in _VALUE_HEADS if hasattr(model, head)]
    for name, param in model.named_parameters():
        layer, parts = _split_param_name(name)
        if layer is None:
            trainable = any(extra in parts for extra in extras)
        else:
            trainable = layer in layer_ids and ("all" in modules or (bool(parts) and parts[0] in modules))
        param.requires_grad_(trainable)
    logger.info("Trainable layers: %s; modules: %s; extra: %s", sorted(layer_ids), modules, extras or "none")


# --- LoRA --------------------------------------------------------------------------------------------------


def _check_lora_targets(model: PreTrainedModel, targets: list[str]) -> None:
    """PEFT matches a target by its full name or a `.`-separated suffix; each entry must hit a layer it can adapt."""
    adaptable = [name for name, module in model.named_modules() if _is_lora_adaptable(module)]
    bad = [t for t in targets if not any(name == t or name.endswith(f".{t}") for name in adaptable)]
    if bad:
        raise ConfigError(
            f"`lora_target` entry {', '.join(bad)} matches no Linear or Embedding layer of {type(model).__name__}. "
            f"Its linear layers are: {', '.join(_linear_names(model))}. Fix: list some of those names "
            "(comma-separated), or use `lora_target: all` for every linear layer except the output head."
        )


def _check_modules_to_save(model: PreTrainedModel, modules: list[str]) -> None:
    names = [name for name, _ in model.named_modules()]
    bad = [m for m in modules if not any(name.endswith(m) for name in names)]  # PEFT's own matching rule
    if bad:
        raise ConfigError(
            f"`additional_target` entry {', '.join(bad)} matches no module of {type(model).__name__}. "
            f"Its modules are: {', '.join(_module_short_names(model))}. Fix: name the modules to train fully and "
            "save with the adapter (e.g. embed_tokens,lm_head after adding tokens), or remove `additional_target`."
        )


def _embedding_module_names(model: PreTrainedModel) -> list[str]:
    embeddings = [model.get_input_embeddings(), model.get_output_embeddings()]
    return sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if any(module is e for e in embeddings)}
    )


def _lora_targets(model: PreTrainedModel, ft: FinetuningArguments) -> list[str]:
    explicit = [t for t in ft.lora_target if t != "all"]
    targets = find_all_linear_modules(model) + explicit if "all" in ft.lora_target else explicit
    targets = list(dict.fromkeys(targets))
    _check_lora_targets(model, targets)
    if ft.use_llama_pro:  # only the expanded blocks, named in full
        layer_ids = set(_freeze_layer_ids(ft, _num_layers(model), type(model).__name__))
        targets = [
            name
            for name, _ in model.named_modules()
            if any(name == t or name.endswith(f".{t}") for t in targets) and _split_param_name(name)[0] in layer_ids
        ]
    return targets


def _lora_config(model: PreTrainedModel, cfg: LfRayConfig) -> Any:
    from peft import LoraConfig, TaskType

    ft = cfg.finetuning
    modules_to_save = list(ft.additional_target) if ft.additional_target else None
    if cfg.model.resize_vocab and not modules_to_save:
        modules_to_save = _embedding_module_names(model)
        logger.warning("Vocab resized: training %s fully and saving them with the adapter.", ",".join(modules_to_save))
    if modules_to_save:
        _check_modules_to_save(model, modules_to_save)
    init: bool | str = True
    if ft.pissa_init:
        init = "pissa" if ft.pissa_iter == -1 else f"pissa_niter_{ft.pissa_iter}"
    return LoraConfig(
        task_type=TaskType.SEQ_CLS if _is_sequence_classifier(model) else TaskType.CAUSAL_LM,
        inference_mode=False,
        r=ft.lora_rank,
        lora_alpha=ft.lora_alpha or ft.lora_rank * 2,
        lora_dropout=ft.lora_dropout,
        target_modules=_lora_targets(model, ft),
        modules_to_save=modules_to_save,
        use_rslora=ft.use_rslora,
        use_dora=ft.use_dora,
        init_lora_weights=init,
    )


def _check_adapter_path(path: str, subfolder: str | None) -> None:
    """A local adapter folder (or one at a URI) must hold a readable adapter_config.json; a hub id is left to PEFT."""
    folder = Path(resolve_adapter_path(path)).expanduser() / (subfolder or "")
    if folder.is_dir():
        config_file = folder / "adapter_config.json"
        if not config_file.is_file():
            raise ModelError(
                f"`adapter_name_or_path` entry {path!r} is not a PEFT adapter folder: {folder} has no "
                "adapter_config.json. Fix: point it at the folder a LoRA training wrote (holding adapter_config.json "
                "and adapter_model.safetensors), e.g. the run's output_dir or one of its checkpoint-N folders."
            )
        try:
            json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelError(
                f"`adapter_name_or_path` entry {path!r}: cannot read {config_file}: {err}. "
                "Fix: check the file's permissions, or re-save the adapter (it may be half-written)."
            ) from err
    elif folder.exists() or looks_like_path(path):
        raise ModelError(
            f"`adapter_name_or_path` entry {path!r} does not exist (resolved to {folder.absolute()}). "
            "Fix: check the path; it should be the folder a LoRA training wrote, holding adapter_config.json."
        )


def _load_adapter(model: Any, path: str, cfg: LfRayConfig, *, is_trainable: bool) -> Any:
    from peft import PeftModel

    kwargs = {"subfolder": cfg.model.adapter_folder} if cfg.model.adapter_folder else {}
    try:
        return PeftModel.from_pretrained(model, resolve_adapter_path(path), is_trainable=is_trainable, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise ModelError(
            f"Cannot load the adapter {path!r} onto {type(model).__name__} ({cfg.model.model_name_or_path}): {err} "
            "Fix: use the adapter with the base model it was trained on (its adapter_config.json names it)."
        ) from err


def _can_merge_adapters(model: Any) -> bool:
    from transformers.integrations import is_deepspeed_zero3_enabled

    return not (is_deepspeed_zero3_enabled() or getattr(model, "quantization_method", None))


def _setup_lora(model: PreTrainedModel, cfg: LfRayConfig, is_trainable: bool) -> Any:
    from peft import get_peft_model

    ft, adapters = cfg.finetuning, list(cfg.model.adapter_name_or_path or [])
    if is_trainable:
        logger.info("Fine-tuning method: %s", "DoRA" if ft.use_dora else "LoRA")
    for path in adapters:
        _check_adapter_path(path, cfg.model.adapter_folder)
    resume = None
    if adapters:
        mergeable = _can_merge_adapters(model)
        if (is_trainable and not ft.create_new_adapter) or not mergeable:
            adapters, resume = adapters[:-1], adapters[-1]
        if adapters and not mergeable:
            raise ConfigError(
                f"`adapter_name_or_path` lists {len(adapters) + 1} adapters, but with DeepSpeed ZeRO-3 or a quantized "
                "model they cannot be merged into the base. Fix: merge the earlier ones into the base model first (the "
                "export step) and list only the last."
            )
        for path in adapters:
            model = _load_adapter(model, path, cfg, is_trainable=False).merge_and_unload()
        if adapters:
            logger.info("Merged %d adapter(s) into the base model: %s", len(adapters), ", ".join(adapters))
        if resume is not None:
            model = _load_adapter(model, resume, cfg, is_trainable=is_trainable)
            logger.info("Loaded adapter %s (%s)", resume, "trainable" if is_trainable else "frozen")
    if is_trainable and resume is None:
        # PEFT keeps adapter weights in fp32 unless training stays in bf16 throughout
        model = get_peft_model(model, _lora_config(model, cfg), autocast_adapter_dtype=not ft.pure_bf16)
    return model


# --- dispatch ----------------------------------------------------------------------------------------------


def _upcast_trainable_params(model: Any, cfg: LfRayConfig) -> None:
    """Trainable weights in fp32 under AMP, as LLaMA-Factory does, unless training stays in half precision."""
    import torch
    from transformers.integrations import is_deepspeed_zero3_enabled

    # ZeRO-3 keeps fp32 masters itself; BAdam keeps fp32 copies of the block it trains
    if cfg.finetuning.pure_bf16 or cfg.finetuning.use_badam or is_deepspeed_zero3_enabled():
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.to(torch.float32)


def apply_finetuning(model: PreTrainedModel, cfg: LfRayConfig, *, is_trainable: bool) -> Any:
    """Apply `finetuning_type` (full / freeze / lora) to a loaded model; LoRA returns a new (PEFT) model.

    Not trainable: full and freeze leave the model as is; LoRA merges the adapters of `adapter_name_or_path`.
    """
    kind = cfg.finetuning.finetuning_type
    if kind == "lora":
        model = _setup_lora(model, cfg, is_trainable)
    elif not is_trainable:
        return model
    elif kind == "full":
        _setup_full(model)
    else:
        _setup_freeze(model, cfg.finetuning)
    if is_trainable:
        if not any(param.requires_grad for param in model.parameters()):
            raise ConfigError(
                f"`finetuning_type: {kind}` leaves no parameter of {type(model).__name__} trainable. "
                "Fix: set `freeze_trainable_layers` to a non-zero number or list `freeze_extra_modules`."
            )
        _upcast_trainable_params(model, cfg)
    return model


# --- optimizer and report ----------------------------------------------------------------------------------


def create_loraplus_optimizer(model: Any, training_args: TrainingArguments, cfg: LfRayConfig) -> torch.optim.Optimizer:
    """LoRA+ (arXiv 2402.12354): lora_B learns `loraplus_lr_ratio` times faster than lora_A, LoRA embeddings at
    `loraplus_lr_embedding`; the optimizer class and its betas / eps are the ones `training_args` picks."""
    from peft.optimizers import create_loraplus_optimizer as peft_loraplus
    from transformers import Trainer

    ratio = cfg.finetuning.loraplus_lr_ratio
    if ratio is None:
        raise ConfigError("LoRA+ needs `loraplus_lr_ratio` (lr of lora_B / lr of lora_A). Fix: set it, e.g. 16.")
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    kwargs = {key: value for key, value in kwargs.items() if key != "lr"}
    logger.info("Using the LoRA+ optimizer with loraplus_lr_ratio %.2f", ratio)
    return peft_loraplus(
        model,
        optimizer_cls,
        lr=training_args.learning_rate,
        loraplus_lr_ratio=ratio,
        loraplus_lr_embedding=cfg.finetuning.loraplus_lr_embedding,
        loraplus_weight_decay=training_args.weight_decay,
        **kwargs,
    )


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, all) parameter counts; DeepSpeed ZeRO-3 partitions report their full size."""
    trainable = total = 0
    for param in model.parameters():
        count = getattr(param, "ds_numel", 0) or param.numel()
        total += count
        if param.requires_grad:
            trainable += count
    return trainable, total


def trainable_parameter_summary(model: Any) -> str:
    """LLaMA-Factory's log line: `trainable params: X || all params: Y || trainable%: Z`."""
    trainable, total = count_parameters(model)
    percent = 100 * trainable / total if total else 0.0
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {percent:.4f}"


def check_finetuning(model: PreTrainedModel, cfg: LfRayConfig) -> None:
    """Check the finetuning settings against the model's structure without changing it. A weightless
    (meta-device) skeleton is enough, so the driver can refuse bad targets before any worker starts."""
    ft = cfg.finetuning
    if ft.finetuning_type == "lora":
        _lora_targets(model, ft)
        _check_modules_to_save(model, list(ft.additional_target or []))
        for path in cfg.model.adapter_name_or_path or []:
            _check_adapter_path(path, cfg.model.adapter_folder)
    elif ft.finetuning_type == "freeze":
        _freeze_layer_ids(ft, _num_layers(model), type(model).__name__)
        _check_freeze_modules(model, list(ft.freeze_trainable_modules or ["all"]), list(ft.freeze_extra_modules or []))
