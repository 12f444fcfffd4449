"""QLoRA: the base model quantized by bitsandbytes (on this machine's CPU), LoRA trained on top."""

from __future__ import annotations

import torch

from lf_ray.config import prepare_config
from lf_ray.model.adapters import count_parameters
from lf_ray.model.loading import load_model
from lf_ray.model.quantization import quantization_kwargs

IDS = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])


def make_cfg(*overrides: str):
    return prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "finetuning_type=lora", *overrides])


def test_no_quantization_bit_loads_as_before():
    assert quantization_kwargs(make_cfg(), torch.float32, for_training=True) == {}


def test_four_bit_takes_llama_factorys_settings():
    kwargs = quantization_kwargs(
        make_cfg("quantization_bit=4", "quantization_method=bnb"), torch.bfloat16, for_training=True
    )
    config = kwargs["quantization_config"]
    assert config.load_in_4bit and not config.load_in_8bit
    assert (config.bnb_4bit_quant_type, config.bnb_4bit_use_double_quant) == ("nf4", True)  # LF's defaults
    assert config.bnb_4bit_compute_dtype == config.bnb_4bit_quant_storage == torch.bfloat16
    assert kwargs["device_map"] == {"": "cpu"}  # this process's device (a worker's GPU where there is one)

    fp4 = quantization_kwargs(
        make_cfg("quantization_bit=4", "quantization_type=fp4", "double_quantization=false"),
        torch.float32,
        for_training=True,
    )["quantization_config"]
    assert (fp4.bnb_4bit_quant_type, fp4.bnb_4bit_use_double_quant) == ("fp4", False)


def test_eight_bit_and_the_inference_device_map():
    eight = quantization_kwargs(make_cfg("quantization_bit=8"), torch.float32, for_training=True)
    assert eight["quantization_config"].load_in_8bit
    serving = make_cfg("quantization_bit=4", "quantization_device_map=auto", "do_train=false")
    assert quantization_kwargs(serving, torch.float32, for_training=False)["device_map"] == "auto"


def test_qlora_trains_lora_on_a_four_bit_base():
    import bitsandbytes as bnb

    model, _ = load_model(make_cfg("quantization_bit=4", "lora_target=all"), for_training=True)
    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 14  # 2 layers x 7 projections; the embeddings and the head stay unquantized
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert count_parameters(model)[0] == sum(p.numel() for p in model.parameters() if p.requires_grad)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(4):
        loss = model(input_ids=IDS, labels=IDS).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
