"""Fine-tuning-argument mixins for the trainable-parameter methods: freeze, LoRA and OFT.

Flattened into `FinetuningArguments`; names, defaults and help are LLaMA-Factory's
(`hparams/finetuning_args.py`). LoRA and OFT share `additional_target` and `create_new_adapter`, declared
once here in the LoRA group.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FreezeArguments:
    """Arguments pertaining to the freeze (partial-parameter) training."""

    freeze_trainable_layers: int = field(
        default=2,
        metadata={
            "help": "The number of trainable layers for freeze (partial-parameter) fine-tuning. "
            "Positive numbers mean the last n layers are set as trainable, "
            "negative numbers mean the first n layers are set as trainable."
        },
    )
    freeze_trainable_modules: str | list[str] = field(
        default="all",
        metadata={
            "help": "Name(s) of trainable modules for freeze (partial-parameter) fine-tuning. "
            "Use commas to separate multiple modules. "
            "Use `all` to specify all the available modules."
        },
    )
    freeze_extra_modules: str | list[str] | None = field(
        default=None,
        metadata={
            "help": "Name(s) of modules apart from hidden layers to be set as trainable "
            "for freeze (partial-parameter) fine-tuning. "
            "Use commas to separate multiple modules."
        },
    )


@dataclass
class LoraArguments:
    """Arguments pertaining to the LoRA training."""

    additional_target: str | list[str] | None = field(
        default=None,
        metadata={
            "help": "Name(s) of modules apart from LoRA layers to be set as trainable "
            "and saved in the final checkpoint. "
            "Use commas to separate multiple modules."
        },
    )
    lora_alpha: int | None = field(
        default=None, metadata={"help": "The scale factor for LoRA fine-tuning (default: lora_rank * 2)."}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout rate for the LoRA fine-tuning."})
    lora_rank: int = field(default=8, metadata={"help": "The intrinsic dimension for LoRA fine-tuning."})
    lora_target: str | list[str] = field(
        default="all",
        metadata={
            "help": "Name(s) of target modules to apply LoRA. "
            "Use commas to separate multiple modules. "
            "Use `all` to specify all the linear modules."
        },
    )
    loraplus_lr_ratio: float | None = field(
        default=None, metadata={"help": "LoRA plus learning rate ratio (lr_B / lr_A)."}
    )
    loraplus_lr_embedding: float = field(
        default=1e-6, metadata={"help": "LoRA plus learning rate for lora embedding layers."}
    )
    use_rslora: bool = field(
        default=False,
        metadata={"help": "Whether or not to use the rank stabilization scaling factor for LoRA layer."},
    )
    use_dora: bool = field(
        default=False, metadata={"help": "Whether or not to use the weight-decomposed lora method (DoRA)."}
    )
    pissa_init: bool = field(default=False, metadata={"help": "Whether or not to initialize a PiSSA adapter."})
    pissa_iter: int = field(
        default=16,
        metadata={"help": "The number of iteration steps performed by FSVD in PiSSA. Use -1 to disable it."},
    )
    pissa_convert: bool = field(
        default=False,
        metadata={"help": "Whether or not to convert the PiSSA adapter to a normal LoRA adapter."},
    )
    create_new_adapter: bool = field(
        default=False,
        metadata={"help": "Whether or not to create a new adapter with randomly initialized weight."},
    )


@dataclass
class OFTArguments:
    """Arguments pertaining to the OFT training."""

    module_dropout: float = field(default=0.0, metadata={"help": "Dropout rate for the OFT fine-tuning."})
    oft_rank: int = field(default=0, metadata={"help": "The intrinsic dimension for OFT fine-tuning."})
    oft_block_size: int = field(default=32, metadata={"help": "The intrinsic dimension for OFT fine-tuning."})
    oft_target: str | list[str] = field(
        default="all",
        metadata={
            "help": "Name(s) of target modules to apply OFT. "
            "Use commas to separate multiple modules. "
            "Use `all` to specify all the linear modules."
        },
    )
