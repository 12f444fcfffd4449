"""Model-argument mixins for export and the inference engines (vLLM, SGLang, KTransformers).

They are flattened into `ModelArguments` (as in LLaMA-Factory's `hparams/model_args.py`), so their keys sit
at the top level of a config file next to `model_name_or_path`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ExportArguments:
    """Arguments pertaining to the model export."""

    export_dir: str | None = field(default=None, metadata={"help": "Path to the directory to save the exported model."})
    export_size: int = field(default=5, metadata={"help": "The file shard size (in GB) of the exported model."})
    export_device: Literal["cpu", "auto"] = field(
        default="cpu",
        metadata={"help": "The device used in model export, use `auto` to accelerate exporting."},
    )
    export_quantization_bit: int | None = field(
        default=None, metadata={"help": "The number of bits to quantize the exported model."}
    )
    export_quantization_dataset: str | None = field(
        default=None,
        metadata={"help": "Path to the dataset or dataset name to use in quantizing the exported model."},
    )
    export_quantization_nsamples: int = field(
        default=128, metadata={"help": "The number of samples used for quantization."}
    )
    export_quantization_maxlen: int = field(
        default=1024, metadata={"help": "The maximum length of the model inputs used for quantization."}
    )
    export_legacy_format: bool = field(
        default=False, metadata={"help": "Whether or not to save the `.bin` files instead of `.safetensors`."}
    )
    export_hub_model_id: str | None = field(
        default=None,
        metadata={"help": "The name of the repository if push the model to the Hugging Face hub."},
    )


@dataclass
class VllmArguments:
    """Arguments pertaining to the vLLM worker."""

    vllm_maxlen: int = field(
        default=4096, metadata={"help": "Maximum sequence (prompt + response) length of the vLLM engine."}
    )
    vllm_gpu_util: float = field(
        default=0.7, metadata={"help": "The fraction of GPU memory in (0,1) to be used for the vLLM engine."}
    )
    vllm_enforce_eager: bool = field(
        default=False, metadata={"help": "Whether or not to disable CUDA graph in the vLLM engine."}
    )
    vllm_max_lora_rank: int = field(default=32, metadata={"help": "Maximum rank of all LoRAs in the vLLM engine."})
    vllm_config: dict | None = field(
        default=None, metadata={"help": "Config to initialize the vllm engine. Please use JSON strings."}
    )


@dataclass
class SGLangArguments:
    """Arguments pertaining to the SGLang worker."""

    sglang_maxlen: int = field(
        default=4096, metadata={"help": "Maximum sequence (prompt + response) length of the SGLang engine."}
    )
    sglang_mem_fraction: float = field(
        default=0.7, metadata={"help": "The memory fraction (0-1) to be used for the SGLang engine."}
    )
    sglang_tp_size: int = field(default=-1, metadata={"help": "Tensor parallel size for the SGLang engine."})
    sglang_config: dict | None = field(
        default=None, metadata={"help": "Config to initialize the SGLang engine. Please use JSON strings."}
    )
    sglang_lora_backend: Literal["triton", "flashinfer"] = field(
        default="triton",
        metadata={
            "help": "The backend of running GEMM kernels for Lora modules. "
            "Recommend using the Triton LoRA backend for better performance and stability."
        },
    )


@dataclass
class KTransformersArguments:
    """Arguments pertaining to KTransformers AMX MoE SFT training."""

    use_kt: bool = field(
        default=False, metadata={"help": "Whether to use KTransformers AMX MoE backend for SFT training."}
    )
    kt_cpu_activation: Literal["retain", "recompute"] | None = field(
        default=None,
        metadata={
            "help": "Whether KTransformers retains CPU expert activations during GPU gradient checkpointing. "
            "Defaults to recompute while checkpointing is enabled and retain otherwise."
        },
    )
    kt_weight_path: str | None = field(
        default=None, metadata={"help": "Path to pre-quantized INT8 expert weights (.kt files)."}
    )
    kt_non_expert_weight_path: str | None = field(
        default=None,
        metadata={
            "help": "Path to a validated BF16 non-expert cache used with routed INT8 experts. "
            "This is a LLaMA-Factory loader setting, not a KT kernel option."
        },
    )
    kt_expert_checkpoint_path: str | None = field(
        default=None, metadata={"help": "Path to expert checkpoint (safetensors) for online conversion."}
    )
    kt_use_lora_experts: bool | None = field(default=None, metadata={"help": "Whether to use GPU-side LoRA Experts."})
    kt_lora_expert_num: int | None = field(default=None, metadata={"help": "Number of GPU-side LoRA Experts."})
    kt_lora_expert_intermediate_size: int | None = field(
        default=None, metadata={"help": "Intermediate size for GPU-side LoRA Experts."}
    )
