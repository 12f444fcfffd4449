"""The export step: base model (+ LoRA adapters merged in) saved as a self-contained model folder.

    run_export(prepare_config(None, ["model_name_or_path=...", "adapter_name_or_path=...", "export_dir=..."]))

LLaMA-Factory's `export_model`: load the model with its adapters merged (PEFT `merge_and_unload`), cast it to
the output dtype, save sharded safetensors, the tokenizer and an Ollama Modelfile. lf-ray also writes the
template into the tokenizer as its `chat_template` and its stop tokens into `generation_config.json`, so any
engine (transformers, vLLM, Ray Serve LLM) prompts and stops as training did, and a `manifest.json`.
The folder is written atomically: an existing `export_dir` is replaced only once the new one is complete.

Not supported: merging into a quantized base (`quantization_bit`: export merges a QLoRA adapter into the
full-precision base); refused when the config is read (`config.support`): quantized export
(`export_quantization_bit`) and `.bin` weights (`export_legacy_format`). `export_hub_model_id` pushes the
committed folder to the hub (`export.hub`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray import storage
from lf_ray.artifacts import build_manifest, committed, write_json
from lf_ray.constants import BUILTIN_PREFIX, MANIFEST_NAME
from lf_ray.errors import ConfigError, TemplateError
from lf_ray.export.chat_template import jinja_chat_template, ollama_modelfile
from lf_ray.export.hub import check_hub_push, push_to_hub

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig
    from lf_ray.data.templates import Template

logger = logging.getLogger(__name__)

MODELFILE_NAME = "Modelfile"
_SHARD_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ExportResult:
    export_dir: str  # a local path or a URI
    files: list[str]  # every file of the folder, sorted
    shards: list[str]  # the weight files
    merged: bool  # whether LoRA adapters were merged into the base


# --- checks ------------------------------------------------------------------------------------------------


def check_export_config(cfg: LfRayConfig) -> None:
    """Refuse what export cannot do, before any weight is loaded."""
    model, kind = cfg.model, cfg.finetuning.finetuning_type
    if not model.export_dir:
        raise ConfigError("`export_dir` is not set. Fix: set `export_dir` to the folder the merged model goes to.")
    if model.adapter_name_or_path and kind != "lora":
        raise ConfigError(
            f"`adapter_name_or_path` is set, but `finetuning_type` is {kind}: only LoRA adapters can be merged. "
            "Fix: set `finetuning_type: lora`, or drop `adapter_name_or_path` and point `model_name_or_path` at the "
            "full / freeze checkpoint."
        )
    if model.quantization_bit is not None:
        raise ConfigError(
            f"`quantization_bit: {model.quantization_bit}` loads the base model quantized, and adapters cannot be "
            "merged into quantized weights. Fix: remove `quantization_bit`: export merges the QLoRA adapter into "
            "the full-precision base (export_quantization_bit is not supported yet)"
        )
    _check_not_a_source(cfg)
    if model.export_hub_model_id:
        check_hub_push(model.export_hub_model_id)


def _check_not_a_source(cfg: LfRayConfig) -> None:
    """Replacing the folder we read from would destroy the input if the export were interrupted."""
    target = storage.resolve(cfg.model.export_dir).rstrip("/")
    for key, value in [("model_name_or_path", cfg.model.model_name_or_path)] + [
        ("adapter_name_or_path", path) for path in cfg.model.adapter_name_or_path or []
    ]:
        if not value.startswith(BUILTIN_PREFIX) and storage.resolve(value).rstrip("/") == target:
            raise ConfigError(
                f"`export_dir: {cfg.model.export_dir}` is the `{key}` folder, which export would overwrite. "
                "Fix: export into a new folder."
            )


# --- model -------------------------------------------------------------------------------------------------


def export_dtype(cfg: LfRayConfig) -> torch.dtype:
    """`infer_dtype` when set (saving needs no half-precision compute, so also on a CPU), else the dtype the
    model loads in for inference (float32 without CUDA)."""
    import torch

    from lf_ray.model.loading import choose_dtype

    if cfg.model.infer_dtype != "auto":
        return getattr(torch, cfg.model.infer_dtype)
    return choose_dtype(cfg, for_training=False)


def _load_merged_model(cfg: LfRayConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The base with every adapter of `adapter_name_or_path` merged in (a full / freeze model as it is)."""
    from peft import PeftModel

    from lf_ray.model.loading import load_model

    model, _ = load_model(cfg, for_training=False, tokenizer=tokenizer)
    if isinstance(model, PeftModel):  # load_model keeps the last adapter unmerged when it cannot merge
        model = model.merge_and_unload()
    return model


def _set_generation_config(model: PreTrainedModel, template: Template, tokenizer: PreTrainedTokenizerBase) -> None:
    stop_ids = template.get_stop_token_ids(tokenizer)
    config = model.generation_config
    config.eos_token_id = stop_ids[0] if len(stop_ids) == 1 else stop_ids
    config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id


# --- writing -----------------------------------------------------------------------------------------------


def save_model_weights(model: PreTrainedModel, directory: Path, max_shard_size: str | int) -> list[str]:
    """`save_pretrained` into `directory`; the weight files written (one, or several shards plus an index)."""
    model.save_pretrained(directory, max_shard_size=max_shard_size)
    return sorted(p.name for p in Path(directory).iterdir() if p.suffix in _SHARD_SUFFIXES)


def _save_tokenizer(tokenizer: PreTrainedTokenizerBase, template: Template, directory: Path) -> bool:
    """Save the tokenizer with the template as its chat_template; False when the template cannot be written."""
    try:
        tokenizer.chat_template = jinja_chat_template(template, tokenizer)
        written = True
    except TemplateError as err:
        logger.warning("The exported tokenizer keeps its own chat_template: %s", err)
        written = False
    tokenizer.padding_side = "left"  # for batched generation, as LLaMA-Factory exports it
    tokenizer.init_kwargs["padding_side"] = "left"
    tokenizer.save_pretrained(directory)
    return written


def _save_modelfile(template: Template, tokenizer: PreTrainedTokenizerBase, directory: Path) -> bool:
    try:
        text = ollama_modelfile(template, tokenizer)
    except TemplateError as err:
        logger.warning("No Ollama Modelfile written: %s", err)
        return False
    (directory / MODELFILE_NAME).write_text(text, encoding="utf-8")
    return True


def _manifest(cfg: LfRayConfig, template: Template, dtype: torch.dtype, shards: list[str], **flags: Any) -> dict:
    return build_manifest(
        "merged_model",
        base_model=cfg.model.model_name_or_path,
        adapters=list(cfg.model.adapter_name_or_path or []),
        finetuning_type=cfg.finetuning.finetuning_type,
        dtype=str(dtype).removeprefix("torch."),
        template=template.name,
        shards=shards,
        **flags,
    )


def run_export(cfg: LfRayConfig) -> ExportResult:
    """Merge and save the config's model into `export_dir`, replacing what was there only on success."""
    from lf_ray.data.tokenizer_spec import tokenizer_spec

    check_export_config(cfg)
    tokenizer, template = tokenizer_spec(cfg).load()  # the tokenizer fixed exactly as training fixed it
    model = _load_merged_model(cfg, tokenizer)
    dtype = export_dtype(cfg)
    model = model.to(dtype)
    _set_generation_config(model, template, tokenizer)
    export_dir = storage.resolve(cfg.model.export_dir)
    merged = bool(cfg.model.adapter_name_or_path)
    with committed(export_dir) as tmp:
        shards = save_model_weights(model, tmp, max_shard_size=f"{cfg.model.export_size}GB")
        chat_template = _save_tokenizer(tokenizer, template, tmp)
        modelfile = _save_modelfile(template, tokenizer, tmp)
        manifest = _manifest(
            cfg, template, dtype, shards, merged=merged, chat_template=chat_template, modelfile=modelfile
        )
        write_json(tmp / MANIFEST_NAME, manifest)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    logger.info(
        "Exported %s (%s, %d weight file(s)) to %s", cfg.model.model_name_or_path, dtype, len(shards), export_dir
    )
    if cfg.model.export_hub_model_id:
        push_to_hub(export_dir, cfg.model.export_hub_model_id)
    return ExportResult(export_dir=export_dir, files=files, shards=shards, merged=merged)
