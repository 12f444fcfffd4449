"""`ModelArguments`: which model, tokenizer, attention kernel and quantization to use.

Field names, defaults and help are LLaMA-Factory's (`hparams/model_args.py`), with its mixins flattened
into one class: base, quantization and processor fields here, export / vLLM / SGLang / KTransformers
fields in `engine_args.py`. `model_name_or_path` also takes lf-ray's local models `builtin:tiny-llama`,
`builtin:tiny-qwen` and `builtin:smollm2-135m`; this layer keeps it as a plain string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lf_ray.config.coercion import parse_json_object, split_commas
from lf_ray.config.engine_args import ExportArguments, KTransformersArguments, SGLangArguments, VllmArguments

# Names LLaMA-Factory used before it renamed them; the loader maps them onto today's field.
MODEL_KEY_ALIASES: dict[str, str] = {
    "new_special_tokens": "add_special_tokens",
    "image_resolution": "image_max_pixels",
    "video_resolution": "video_max_pixels",
}


@dataclass
class BaseModelArguments:
    """Arguments pertaining to the model."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Path to the model weight or identifier from huggingface.co/models or modelscope.cn/models."},
    )
    adapter_name_or_path: str | list[str] | None = field(
        default=None,
        metadata={
            "help": "Path to the adapter weight or identifier from huggingface.co/models. "
            "Use commas to separate multiple adapters."
        },
    )
    adapter_folder: str | None = field(
        default=None, metadata={"help": "The folder containing the adapter weights to load."}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where to store the pre-trained models downloaded from huggingface.co or modelscope.cn."},
    )
    use_fast_tokenizer: bool = field(
        default=True,
        metadata={"help": "Whether or not to use one of the fast tokenizer (backed by the tokenizers library)."},
    )
    resize_vocab: bool = field(
        default=False, metadata={"help": "Whether or not to resize the tokenizer vocab and the embedding layers."}
    )
    split_special_tokens: bool = field(
        default=False,
        metadata={"help": "Whether or not the special tokens should be split during the tokenization process."},
    )
    add_tokens: str | list[str] | None = field(
        default=None,
        metadata={"help": "Non-special tokens to be added into the tokenizer. Use commas to separate multiple tokens."},
    )
    add_special_tokens: str | list[str] | None = field(
        default=None,
        metadata={"help": "Special tokens to be added into the tokenizer. Use commas to separate multiple tokens."},
    )
    new_special_tokens_config: str | None = field(
        default=None,
        metadata={
            "help": "Path to YAML config with special token descriptions for semantic initialization. "
            "If set, this takes precedence over add_special_tokens. "
            "YAML format: {'<token>': 'description text', ...}"
        },
    )
    init_special_tokens: Literal["noise_init", "desc_init", "desc_init_w_noise"] = field(
        default="noise_init",
        metadata={
            "help": "Initialization method for new special tokens: "
            "'noise_init' (default, random noise around mean), "
            "'desc_init' (semantic initialization from descriptions), "
            "'desc_init_w_noise' (semantic + random noise). "
            "Note: 'desc_init' methods require new_special_tokens_config."
        },
    )
    model_revision: str = field(
        default="main",
        metadata={"help": "The specific model version to use (can be a branch name, tag name or commit id)."},
    )
    low_cpu_mem_usage: bool = field(
        default=True, metadata={"help": "Whether or not to use memory-efficient model loading."}
    )
    rope_scaling: Literal["linear", "dynamic", "yarn", "llama3"] | None = field(
        default=None, metadata={"help": "Which scaling strategy should be adopted for the RoPE embeddings."}
    )
    flash_attn: Literal["auto", "disabled", "sdpa", "fa2", "fa3"] = field(
        default="auto", metadata={"help": "Enable FlashAttention for faster training and inference."}
    )
    shift_attn: bool = field(
        default=False, metadata={"help": "Enable shift short attention (S^2-Attn) proposed by LongLoRA."}
    )
    mixture_of_depths: Literal["convert", "load"] | None = field(
        default=None, metadata={"help": "Convert the model to mixture-of-depths (MoD) or load the MoD model."}
    )
    use_unsloth: bool = field(
        default=False, metadata={"help": "Whether or not to use unsloth's optimization for the LoRA training."}
    )
    use_unsloth_gc: bool = field(
        default=False,
        metadata={"help": "Whether or not to use unsloth's gradient checkpointing (no need to install unsloth)."},
    )
    enable_liger_kernel: bool = field(
        default=False, metadata={"help": "Whether or not to enable liger kernel for faster training."}
    )
    moe_aux_loss_coef: float | None = field(
        default=None, metadata={"help": "Coefficient of the auxiliary router loss in mixture-of-experts model."}
    )
    disable_gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Whether or not to disable gradient checkpointing."}
    )
    use_reentrant_gc: bool = field(
        default=True, metadata={"help": "Whether or not to use reentrant gradient checkpointing."}
    )
    upcast_layernorm: bool = field(
        default=False, metadata={"help": "Whether or not to upcast the layernorm weights in fp32."}
    )
    upcast_lmhead_output: bool = field(
        default=False, metadata={"help": "Whether or not to upcast the output of lm_head in fp32."}
    )
    train_from_scratch: bool = field(
        default=False, metadata={"help": "Whether or not to randomly initialize the model weights."}
    )
    infer_backend: Literal["huggingface", "vllm", "sglang", "ktransformers"] = field(
        default="huggingface", metadata={"help": "Backend engine used at inference."}
    )
    offload_folder: str = field(default="offload", metadata={"help": "Path to offload model weights."})
    use_kv_cache: bool = field(default=True, metadata={"help": "Whether or not to use KV cache in generation."})
    use_v1_kernels: bool | None = field(
        default=False, metadata={"help": "Whether or not to use high-performance kernels in training."}
    )
    infer_dtype: Literal["auto", "float16", "bfloat16", "float32"] = field(
        default="auto", metadata={"help": "Data type for model weights and activations at inference."}
    )
    hf_hub_token: str | None = field(default=None, metadata={"help": "Auth token to log in with Hugging Face Hub."})
    ms_hub_token: str | None = field(default=None, metadata={"help": "Auth token to log in with ModelScope Hub."})
    om_hub_token: str | None = field(default=None, metadata={"help": "Auth token to log in with Modelers Hub."})
    print_param_status: bool = field(
        default=False,
        metadata={"help": "For debugging purposes, print the status of the parameters in the model."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Whether to trust the execution of code from datasets/models defined on the Hub or not."},
    )


@dataclass
class QuantizationArguments:
    """Arguments pertaining to the quantization method."""

    quantization_method: Literal[
        "bnb", "gptq", "awq", "aqlm", "quanto", "eetq", "hqq", "mxfp4", "fp8", "bitsandbytes"
    ] = field(default="bnb", metadata={"help": "Quantization method to use for on-the-fly quantization."})
    quantization_bit: int | None = field(
        default=None,
        metadata={"help": "The number of bits to quantize the model using on-the-fly quantization."},
    )
    quantization_type: Literal["fp4", "nf4"] = field(
        default="nf4", metadata={"help": "Quantization data type to use in bitsandbytes int4 training."}
    )
    double_quantization: bool = field(
        default=True,
        metadata={"help": "Whether or not to use double quantization in bitsandbytes int4 training."},
    )
    quantization_device_map: Literal["auto"] | None = field(
        default=None,
        metadata={"help": "Device map used to infer the 4-bit quantized model, needs bitsandbytes>=0.43.0."},
    )


@dataclass
class ProcessorArguments:
    """Arguments pertaining to the image, video and audio processor."""

    image_max_pixels: int = field(default=768 * 768, metadata={"help": "The maximum number of pixels of image inputs."})
    image_min_pixels: int = field(default=32 * 32, metadata={"help": "The minimum number of pixels of image inputs."})
    image_do_pan_and_scan: bool = field(
        default=False, metadata={"help": "Use pan and scan to process image for gemma3."}
    )
    crop_to_patches: bool = field(
        default=False, metadata={"help": "Whether to crop the image to patches for internvl."}
    )
    video_max_pixels: int = field(default=256 * 256, metadata={"help": "The maximum number of pixels of video inputs."})
    video_min_pixels: int = field(default=16 * 16, metadata={"help": "The minimum number of pixels of video inputs."})
    video_fps: float = field(default=2.0, metadata={"help": "The frames to sample per second for video inputs."})
    video_maxlen: int = field(default=128, metadata={"help": "The maximum number of sampled frames for video inputs."})
    use_audio_in_video: bool = field(default=False, metadata={"help": "Whether or not to use audio in video inputs."})
    audio_sampling_rate: int = field(default=16000, metadata={"help": "The sampling rate of audio inputs."})


@dataclass
class ModelArguments(
    SGLangArguments,
    VllmArguments,
    KTransformersArguments,
    ExportArguments,
    ProcessorArguments,
    QuantizationArguments,
    BaseModelArguments,
):
    """Arguments pertaining to which model/config/tokenizer we are going to fine-tune or infer."""

    def __post_init__(self) -> None:
        self.adapter_name_or_path = split_commas(self.adapter_name_or_path)
        self.add_tokens = split_commas(self.add_tokens)
        self.add_special_tokens = split_commas(self.add_special_tokens)
        self.vllm_config = parse_json_object(self.vllm_config)
        self.sglang_config = parse_json_object(self.sglang_config)
        if self.quantization_method == "bitsandbytes":  # LLaMA-Factory's older spelling of `bnb`
            self.quantization_method = "bnb"
