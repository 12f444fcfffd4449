"""QLoRA's base model: LLaMA-Factory's on-the-fly bitsandbytes quantization (`quantization_bit` 4 or 8).

    kwargs = quantization_kwargs(cfg, compute_dtype, for_training=True)   # {} when quantization_bit is unset
    model = AutoModelForCausalLM.from_pretrained(path, dtype=compute_dtype, **kwargs)

As LLaMA-Factory's `configure_quantization`: 4-bit takes `quantization_type` (nf4 / fp4), `double_quantization`, and
the compute dtype as both compute and storage dtype; 8-bit is `load_in_8bit`. The weights go to this process's
device (`{"": device}`: a Ray Train worker's GPU, or the CPU); `quantization_device_map: auto` spreads them over the
visible GPUs, for inference only. bitsandbytes runs 4-bit and 8-bit layers on the CPU too (0.45+), so QLoRA trains
on a GPU-less machine, slowly.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from lf_ray.config import LfRayConfig

INSTALL_HINT = "pip install 'lf-ray[qlora]' (bitsandbytes)"


def bitsandbytes_missing(cfg: LfRayConfig) -> str | None:
    """The problem, when the config quantizes and bitsandbytes is not installed here."""
    if cfg.model.quantization_bit is None or importlib.util.find_spec("bitsandbytes") is not None:
        return None
    return f"`quantization_bit: {cfg.model.quantization_bit}` (QLoRA) needs bitsandbytes, which is not installed: " + (
        INSTALL_HINT
    )


def current_device() -> str:
    """This process's device: its local GPU (a Ray Train worker's `LOCAL_RANK`), else the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return "cpu"


def quantization_kwargs(cfg: LfRayConfig, compute_dtype: torch.dtype, *, for_training: bool) -> dict[str, Any]:
    """`from_pretrained` keyword arguments that load the base model quantized; {} without `quantization_bit`."""
    model = cfg.model
    if model.quantization_bit is None:
        return {}
    config = QUANTIZERS[model.quantization_method](cfg, compute_dtype)  # the config rules admit bnb alone
    auto = not for_training and model.quantization_device_map == "auto"
    return {"quantization_config": config, "device_map": "auto" if auto else {"": current_device()}}


def _bitsandbytes(cfg: LfRayConfig, compute_dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    model = cfg.model
    if model.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=compute_dtype,
        bnb_4bit_use_double_quant=model.double_quantization,
        bnb_4bit_quant_type=model.quantization_type,
        bnb_4bit_quant_storage=compute_dtype,
    )


QUANTIZERS = {"bnb": _bitsandbytes}
"""`quantization_method` → the builder of its `quantization_config`."""
