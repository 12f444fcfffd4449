"""Optimizers the trainer cannot build from `optim` alone, as LLaMA-Factory's `create_custom_optimizer`:
LoRA+ (lora_B's learning-rate ratio), BAdam (one block of the model at a time), Adam-mini (it needs the model's
attention layout) and Muon (hidden weight matrices apart from the rest). Otherwise None, and the trainer builds the
one `optim` names (GaLore and APOLLO included: `arguments.low_rank_optimizer`)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from collections.abc import Callable

    from transformers import PreTrainedModel, Trainer, TrainingArguments

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)


def custom_optimizer(
    model: PreTrainedModel, training_args: TrainingArguments, cfg: LfRayConfig
) -> torch.optim.Optimizer | None:
    ft = cfg.finetuning
    if ft.loraplus_lr_ratio is not None:
        from lf_ray.model.adapters import create_loraplus_optimizer

        return create_loraplus_optimizer(model, training_args, cfg)
    if ft.use_badam:
        return badam_optimizer(model, training_args, cfg)
    if ft.use_adam_mini:
        return adam_mini_optimizer(model, training_args)
    if ft.use_muon:
        return muon_optimizer(model, training_args)
    return None


def adam_mini_optimizer(model: PreTrainedModel, training_args: TrainingArguments) -> torch.optim.Optimizer:
    """Adam-mini (arXiv 2406.16793): one second-moment value per block (per attention head, per neuron), laid out
    from the model's hidden size and query / key-value heads; betas, eps and weight decay from the arguments."""
    from adam_mini import Adam_mini
    from transformers.integrations import is_deepspeed_zero3_enabled

    config = model.config
    logger.info("Using the Adam-mini optimizer")
    return Adam_mini(
        named_parameters=model.named_parameters(),
        lr=training_args.learning_rate,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        weight_decay=training_args.weight_decay,
        model_sharding=is_deepspeed_zero3_enabled(),
        dim=config.hidden_size,
        n_heads=config.num_attention_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None),
        verbose=False,
    )


# --- BAdam -------------------------------------------------------------------------------------------------


def badam_optimizer(
    model: PreTrainedModel, training_args: TrainingArguments, cfg: LfRayConfig
) -> torch.optim.Optimizer:
    """BAdam (arXiv 2404.02827), with the optimizer class, betas and eps `optim` picks.

    `badam_mode: layer`: Adam on one decoder layer at a time, in fp32 copies of its weights; every other weight is
    frozen, and the block changes every `badam_switch_interval` steps in `badam_switch_mode` order. `ratio`: sparse
    Adam on `badam_update_ratio` of the entries of every weight but the embeddings and the output head.
    """
    from transformers import Trainer

    ft = cfg.finetuning
    named = list(model.named_parameters())
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(training_args, model)
    if ft.badam_mode == "layer":
        from badam import BlockOptimizer

        # BAdam builds each block's groups from the base optimizer's defaults, weight decay included: without it
        # there, every block would decay by torch AdamW's default 0.01 whatever `weight_decay` says.
        base = optimizer_cls(
            [p for _, p in named if p.requires_grad], **{**kwargs, "weight_decay": training_args.weight_decay}
        )
        logger.info(
            "Using BAdam, layer-wise: switch mode %s, a new block every %s steps, start block %s",
            ft.badam_switch_mode,
            ft.badam_switch_interval,
            ft.badam_start_block,
        )
        return BlockOptimizer(
            base_optimizer=base,
            named_parameters_list=named,
            block_prefix_list=None,  # one block per decoder layer
            # LLaMA-Factory's -1 "disables the block update"; BAdam itself would switch at every step (n % -1 == 0)
            switch_block_every=ft.badam_switch_interval if (ft.badam_switch_interval or 0) > 0 else math.inf,
            start_block=ft.badam_start_block,
            switch_mode=ft.badam_switch_mode,
            verbose=ft.badam_verbose,
        )
    from badam import BlockOptimizerRatio

    decay = set(Trainer.get_decay_parameter_names(None, model))  # it reads nothing of the trainer
    groups = [
        {"params": [p for n, p in named if p.requires_grad and n not in decay], "weight_decay": 0.0},
        {"params": [p for n, p in named if p.requires_grad and n in decay], "weight_decay": training_args.weight_decay},
    ]
    logger.info("Using BAdam, ratio-wise: update ratio %s, mask mode %s", ft.badam_update_ratio, ft.badam_mask_mode)
    return BlockOptimizerRatio(
        param_groups=groups,
        named_parameters_list=named,
        update_ratio=ft.badam_update_ratio,
        mask_mode=ft.badam_mask_mode,
        verbose=ft.badam_verbose,
        include_embedding=False,
        # it freezes the output head by name; a model without a separate `lm_head` (tied, or a reward head) has none
        include_lm_head=not any("lm_head" in name for name, _ in named),
        **{key: kwargs[key] for key in ("lr", "betas", "eps") if key in kwargs},  # its sparse Adam takes no more
    )


def clip_sparse_gradients(trainer: Trainer) -> None:
    """BAdam's ratio mode leaves sparse gradients, which torch's foreach `clip_grad_norm_` cannot take: clip with
    BAdam's per-tensor version, as LLaMA-Factory's trainers do whenever `use_badam` is on."""
    from types import MethodType

    from badam import clip_grad_norm_old_version

    trainer.accelerator.clip_grad_norm_ = MethodType(clip_grad_norm_old_version, trainer.accelerator)


# --- Muon --------------------------------------------------------------------------------------------------


def muon_optimizer(model: PreTrainedModel, training_args: TrainingArguments) -> torch.optim.Optimizer:
    """Muon for the 2-D weights that are neither embeddings nor the output head, AdamW for the rest: LLaMA-Factory's
    split and settings (momentum 0.95, Nesterov, 5 Newton-Schulz steps, the lr scaled by 0.2 * sqrt(max(A, B)) to
    match AdamW's update size, one weight decay for every parameter)."""
    muon_params, adamw_params = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            hidden_matrix = param.ndim == 2 and "embed" not in name and "lm_head" not in name
            (muon_params if hidden_matrix else adamw_params).append(param)
    lr, weight_decay = training_args.learning_rate, training_args.weight_decay
    logger.info("Using Muon for %d weight matrices and AdamW for %d other tensors", len(muon_params), len(adamw_params))
    muon = adamw = None  # under LoRA every trainable tensor is a matrix: no AdamW
    if muon_params:
        muon = torch.optim.Muon(muon_params, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
    if adamw_params:
        betas = (training_args.adam_beta1, training_args.adam_beta2)
        adamw = torch.optim.AdamW(
            adamw_params, lr=lr, betas=betas, eps=training_args.adam_epsilon, weight_decay=weight_decay
        )
    return MuonWithAdamW(muon, adamw)


class MuonWithAdamW(torch.optim.Optimizer):
    """torch's Muon and AdamW (either may be None) stepped as one optimizer, so the trainer's scheduler, gradient
    clipping and checkpoints see one: its param groups are theirs (Muon's first) and they share its state."""

    def __init__(self, muon: torch.optim.Muon | None, adamw: torch.optim.AdamW | None) -> None:
        self.muon, self.adamw = muon, adamw
        self.parts = [part for part in (muon, adamw) if part is not None]
        groups = [group for part in self.parts for group in part.param_groups]
        super().__init__(groups, defaults={"lr": groups[0]["lr"], "weight_decay": groups[0]["weight_decay"]})
        self._share()

    def _share(self) -> None:
        start = 0
        for part in self.parts:
            count = len(part.param_groups)
            part.param_groups, part.state = self.param_groups[start : start + count], self.state
            start += count

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)  # replaces `param_groups` and `state` with new objects
        self._share()

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for part in self.parts:
            part.step()
        return loss
