"""Which LLaMA-Factory keys lf-ray does not implement, and why: the table `lf-ray keys` and the parse-time rule read.

Every key of every group is implemented (code outside `lf_ray/config` reads it, and a test sets it), refused here,
or listed as not needed. A refused key set to anything but its default stops the config at parse time (exit
status 2), naming the key, its value, what it asks for and what to do instead: ignoring it would train (or serve,
or export) something other than what the config says, without a word. A key that is not needed gets what
LLaMA-Factory wanted from lf-ray's design; setting it prints a note. `tests/config/test_support.py` fails when a
key is none of the three.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig


@dataclass(frozen=True)
class Refusal:
    asks_for: str  # what the keys ask of LLaMA-Factory
    instead: str  # what to do with lf-ray


def _family(refusal: Refusal, *keys: str) -> dict[str, Refusal]:
    return dict.fromkeys(keys, refusal)


REMOVE = "remove it"
MULTIMODAL = Refusal(
    "vision / audio inputs (LLaMA-Factory's multimodal plugins)",
    "lf-ray trains text-only models for now: remove the image / video / audio keys",
)
QUANTIZED_EXPORT = Refusal(
    "a GPTQ-quantized export",
    "export in full precision and quantize the exported folder with a separate tool",
)
KERNELS = Refusal(
    "Unsloth's patched model and trainer, or LLaMA-Factory's v1 kernels",
    "remove it: Unsloth patches one process on one GPU, while lf-ray trains in a Ray Train worker group; for fused "
    "GPU kernels use `enable_liger_kernel: true`, and `flash_attn: fa2` for flash attention",
)
KTRANSFORMERS = Refusal("KTransformers", "remove the kt_* keys")
SGLANG = Refusal("the SGLang inference engine", "use `infer_backend: huggingface` or `vllm`")

REFUSED: dict[str, Refusal] = {
    # model
    "hf_hub_token": Refusal("a hub token in the config", "set HF_TOKEN in the environment"),
    **_family(
        Refusal("models from ModelScope or Modelers", "download the model and point model_name_or_path at the folder"),
        "ms_hub_token",
        "om_hub_token",
    ),
    "use_fast_tokenizer": Refusal("the slow (Python) tokenizer", REMOVE + ": lf-ray loads the fast tokenizer"),
    "low_cpu_mem_usage": Refusal("loading every weight into memory at once", REMOVE),
    "offload_folder": Refusal("offloading weights to disk", REMOVE),
    "shift_attn": Refusal("LongLoRA's shift short attention", REMOVE),
    "mixture_of_depths": Refusal("Mixture-of-Depths", REMOVE),
    **_family(KERNELS, "use_unsloth", "use_v1_kernels"),
    **_family(
        MULTIMODAL,
        "image_max_pixels",
        "image_min_pixels",
        "image_do_pan_and_scan",
        "crop_to_patches",
        "video_max_pixels",
        "video_min_pixels",
        "video_fps",
        "video_maxlen",
        "use_audio_in_video",
        "audio_sampling_rate",
        "media_dir",
        "freeze_vision_tower",
        "freeze_multi_modal_projector",
        "freeze_language_model",
    ),
    **_family(
        QUANTIZED_EXPORT,
        "export_quantization_bit",
        "export_quantization_dataset",
        "export_quantization_nsamples",
        "export_quantization_maxlen",
    ),
    "export_legacy_format": Refusal(
        ".bin weights in the export",
        REMOVE + ": transformers 5 saves safetensors only, which every current engine reads",
    ),
    **_family(
        KTRANSFORMERS,
        "use_kt",
        "kt_cpu_activation",
        "kt_weight_path",
        "kt_non_expert_weight_path",
        "kt_expert_checkpoint_path",
        "kt_use_lora_experts",
        "kt_lora_expert_num",
        "kt_lora_expert_intermediate_size",
    ),
    **_family(SGLANG, "sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size", "sglang_config", "sglang_lora_backend"),
    # data
    "eval_on_each_dataset": Refusal(
        "one evaluation per eval dataset", "run `lf-ray eval` once per dataset (one name in eval_dataset)"
    ),
    # generating, eval
    "download_mode": Refusal("eval tasks downloaded from the hub", "put the task folder under task_dir"),
    # finetuning
    **_family(
        Refusal("OFT fine-tuning", "use finetuning_type lora, freeze or full"),
        "oft_rank",
        "oft_block_size",
        "oft_target",
        "module_dropout",
    ),
    "apollo_scale_front": Refusal("APOLLO's norm-growth limiter in front of the scaling", REMOVE),
    **_family(
        Refusal(
            "layer-wise GaLore / APOLLO updates",
            "remove it: transformers' layer-wise optimizers refuse DDP, and a Ray Train worker group is a DDP group",
        ),
        "galore_layerwise",
        "apollo_layerwise",
    ),
    "use_mca": Refusal("Megatron-Core training (MCoreAdapter)", "use DeepSpeed (`deepspeed:` a ZeRO config)"),
    **_family(
        Refusal("HyperParallel FSDP / tensor parallelism", "use DeepSpeed ZeRO-3 (`deepspeed:` a ZeRO-3 config)"),
        "use_hyper_parallel",
        "hyper_parallel_args",
    ),
    "fp8_enable_fsdp_float8_all_gather": Refusal(
        "FP8 all-gathers under FSDP", REMOVE + ": lf-ray does not train with FSDP"
    ),
}
"""Key → why it is refused. Keys sharing a `Refusal` are one feature and are reported together."""

NOT_NEEDED: dict[str, str] = {
    "save_safetensors": "transformers 5 always saves safetensors (`false` is refused)",
    "master_addr": "Ray Train picks the rendezvous address of its worker group itself",
    "master_port": "Ray Train picks the rendezvous port of its worker group itself",
    "export_device": "lf-ray merges on the CPU of the export task; the merged weights are the same on any device",
    "data_shared_file_system": "lf-ray tokenizes once, with Ray Data, and every worker reads the artifact from "
    "its storage (a shared path or an object store)",
}
"""Key → why lf-ray needs no setting for it (LLaMA-Factory's `ray.remote` launcher and multi-node data keys)."""


def _is_set(cfg: LfRayConfig, key: str, default: Any) -> bool:
    value = cfg.get(key)
    if key == "media_dir":  # its derived default is dataset_dir
        return value not in (None, cfg.data.dataset_dir)
    return value != default


def refusals(cfg: LfRayConfig) -> list[str]:
    """One message per refused feature that `cfg` asks for (a refused key set to something but its default)."""
    from lf_ray.config.schema import all_keys

    keys = all_keys()
    asked: dict[Refusal, list[str]] = {}
    for key, refusal in REFUSED.items():
        if _is_set(cfg, key, keys[key].default):
            asked.setdefault(refusal, []).append(f"`{key}: {json.dumps(cfg.get(key), default=str)}`")
    return [
        f"{', '.join(settings)} ask{'s' if len(settings) == 1 else ''} for {refusal.asks_for}, which lf-ray does not "
        f"implement; it is refused rather than ignored. Fix: {refusal.instead}"
        for refusal, settings in asked.items()
    ]


def not_needed_notes(cfg: LfRayConfig) -> list[str]:
    from lf_ray.config.schema import all_keys

    keys = all_keys()
    return [
        f"`{key}` has no effect in lf-ray: {reason}; remove it"
        for key, reason in NOT_NEEDED.items()
        if _is_set(cfg, key, keys[key].default)
    ]


def key_status(key: str) -> str:
    """`implemented`, `refused: <what it asks for>; <instead>` or `not needed: <why>`, for `lf-ray keys`."""
    if key in REFUSED:
        return f"refused: asks for {REFUSED[key].asks_for}; {REFUSED[key].instead}"
    if key in NOT_NEEDED:
        return f"not needed: {NOT_NEEDED[key]}"
    return "implemented"
