"""What every stage's `build_trainer` receives, and the few helpers they share.

The worker loads the model (with its adapter), the tokenizer and the tokenized splits, builds the arguments
with `train.arguments.build_training_arguments`, and hands them over in a `StageContext`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback, TrainingArguments

    from lf_ray.config import LfRayConfig
    from lf_ray.data.templates import Template


@dataclass
class StageContext:
    """Inputs of a stage's trainer. Datasets hold lf-ray's tokenized columns (`datasets.Dataset`, or any
    iterable dataset the trainer accepts)."""

    cfg: LfRayConfig
    model: PreTrainedModel
    """The model to train, already wrapped by its adapter (a `PeftModel` under LoRA). Stage rm needs a
    sequence-classification model with `num_labels=1`."""
    tokenizer: PreTrainedTokenizerBase
    training_args: TrainingArguments
    train_dataset: Any
    eval_dataset: Any = None
    callbacks: list[TrainerCallback] = field(default_factory=list)
    optimizer: torch.optim.Optimizer | None = None
    """A ready optimizer (LoRA+ makes its own); None lets the trainer build AdamW from the arguments."""
    ref_model: PreTrainedModel | None = None
    """The reference of dpo / kto / ASFT that `ref_model` names (`model.reference`); None means: the adapter
    switched off under PEFT, else a frozen copy of `model`."""
    reward_model: PreTrainedModel | None = None
    """grpo's and ppo's `reward_model` (`model.reward`), frozen; None when the config names none."""
    template: Template | None = None
    """The chat template (ppo stops sampling at its stop words)."""

    @property
    def pad_token_id(self) -> int:
        """The tokenizer's pad id, or eos for a tokenizer without one (what LLaMA-Factory and TRL pad with)."""
        pad = self.tokenizer.pad_token_id
        return self.tokenizer.eos_token_id if pad is None else pad

    @property
    def pad_to_multiple_of(self) -> int | None:
        """The arguments' `pad_to_multiple_of` when they have one (TRL configs resolve "auto" to a number or None)."""
        value = getattr(self.training_args, "pad_to_multiple_of", None)
        return value if isinstance(value, int) else None

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer | None, None]:
        """`optimizers=` of every trainer: our optimizer, and the trainer's scheduler built from the arguments."""
        return self.optimizer, None


def trainer_callbacks(ctx: StageContext) -> list[TrainerCallback]:
    """The caller's callbacks, plus PiSSA's conversion (`pissa_convert`), early stopping (`early_stopping_steps`)
    and BAdam's set-up (`use_badam`: gradients start at the active block, not at the embeddings) when the config
    asks for them; SwanLab's callback too (`use_swanlab`)."""
    from transformers import EarlyStoppingCallback

    callbacks = list(ctx.callbacks)
    if ctx.cfg.finetuning.use_badam:
        from badam import BAdamCallback

        callbacks.append(BAdamCallback())
    if ctx.cfg.finetuning.pissa_convert:
        from lf_ray.train.pissa_convert import PissaConvertCallback

        callbacks.append(PissaConvertCallback())
    if ctx.cfg.finetuning.early_stopping_steps is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=ctx.cfg.finetuning.early_stopping_steps))
    if ctx.cfg.finetuning.use_swanlab:
        from lf_ray.tracking.swanlab_tracking import swanlab_callback

        callbacks.append(swanlab_callback(ctx.cfg))
    from lf_ray.tracking.profiler import profiler_callbacks  # enable_torch_profiler, profile_modules

    callbacks += profiler_callbacks(ctx.cfg)
    return callbacks


def reference_model(ctx: StageContext) -> PreTrainedModel | None:
    """The frozen reference of dpo / kto / ASFT: the config's `ref_model` when it names one.

    Otherwise, under PEFT: None, and the trainer computes reference log-probs with the adapter switched off (see
    `AdapterOffReference`). Under ZeRO-3: None, and TRL loads and shards its own copy from the model's folder.
    Otherwise a frozen deep copy of the model as it is before training.
    """
    from peft import PeftModel
    from transformers.integrations import is_deepspeed_zero3_enabled

    if ctx.ref_model is not None or isinstance(ctx.model, PeftModel) or is_deepspeed_zero3_enabled():
        return ctx.ref_model
    reference = copy.deepcopy(ctx.model)
    reference.eval()
    reference.requires_grad_(False)
    return reference


class PretokenizedMixin:
    """Skips the tokenization TRL trainers run on text columns: lf-ray's preprocess step already made the ids,
    labels and (for kto) KL pairs, and cut them to `cutoff_len`. Put it first in the bases."""

    def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:  # DPO, KTO, Reward trainers
        return dataset

    def tokenize_row(self, feature: dict[str, Any], model: Any = None) -> dict[str, Any]:  # ORPO, CPO trainers
        return {}  # `Dataset.map` keeps the row as it is


class AdapterOffReference:
    """Under PEFT the reference is the base model with the adapter switched off, as in LLaMA-Factory.

    TRL 1.16, handed a `PeftModel`, adds a frozen copy of the adapter named "ref" instead, which also lands in
    every saved checkpoint (a `ref/` folder); removing it makes TRL fall back to switching the adapter off.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        if "ref" in getattr(model, "peft_config", {}):
            model.delete_adapter("ref")
