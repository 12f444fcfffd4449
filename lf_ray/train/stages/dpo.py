"""Stage dpo: preference optimisation on (prompt, chosen, rejected) pairs.

`pref_loss` picks the TRL trainer (the arguments class follows it, see `train.arguments`):

- sigmoid, hinge, ipo: TRL's `DPOTrainer`, `loss_type` of the same name, plus `"sft"` weighted `pref_ftx` and
  `"bco_pair"` weighted like LLaMA-Factory's `pref_bco_weight`;
- sigmoid with `dpo_label_smoothing` (cDPO) and kto_pair: `DPOTrainer` with a hand-written loss
  (`PreferenceTrainer._hand_written_loss`), since TRL 1.16 dropped both;
- orpo: TRL's `experimental.orpo.ORPOTrainer` (odds ratio + NLL, no reference model);
- simpo: TRL's `experimental.cpo.CPOTrainer` with `loss_type="simpo"` and `cpo_alpha = pref_ftx`.

Rows hold LLaMA-Factory's pairwise columns; labels are -100 on the shared prompt, which is how the collators
tell prompt from answer. The reference model is `stages.base.reference_model` (the adapter switched off under
LoRA).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from transformers import Trainer
from trl import DPOTrainer
from trl.import_utils import TRLExperimentalWarning

from lf_ray.constants import IGNORE_INDEX
from lf_ray.train.arguments import HAND_WRITTEN_DPO_LOSSES
from lf_ray.train.collators import PairedSidesCollator, PairwiseCollator
from lf_ray.train.stages.base import (
    AdapterOffReference,
    PretokenizedMixin,
    StageContext,
    reference_model,
    trainer_callbacks,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TRLExperimentalWarning)
    from trl.experimental.cpo import CPOTrainer
    from trl.experimental.orpo import ORPOTrainer


class PreferenceTrainer(PretokenizedMixin, AdapterOffReference, DPOTrainer):
    """TRL's DPOTrainer on lf-ray's tokenized pairs, plus the two losses LLaMA-Factory offers that TRL dropped."""

    def _compute_loss(self, model, inputs, return_outputs):
        if self.loss_types[0] not in HAND_WRITTEN_DPO_LOSSES:
            return super()._compute_loss(model, inputs, return_outputs)
        return self._hand_written_loss(model, inputs, return_outputs)

    def _hand_written_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        shift_mask = inputs["completion_mask"][:, 1:]
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, IGNORE_INDEX)
        model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        outputs = model(**model_inputs, labels=labels, fused_lm_head=True, use_cache=False)
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1) :]
        chosen_logps, rejected_logps = per_token_logps.sum(dim=1).chunk(2)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self.compute_ref_log_probs(self.ref_model or model, inputs)
        chosen_ratio, rejected_ratio = chosen_logps - ref_chosen, rejected_logps - ref_rejected
        losses = hand_written_losses(self.loss_types[0], chosen_ratio, rejected_ratio, self.beta, self.label_smoothing)
        loss = losses.mean() * self.loss_weights[0]
        if "sft" in self.loss_types:  # the same term as TRL's "sft" loss type
            chosen_mask, _ = shift_mask.chunk(2)
            chosen_token_logps, _ = per_token_logps.chunk(2)
            sft_weight = self.loss_weights[self.loss_types.index("sft")]
            loss = loss - sft_weight * chosen_token_logps[chosen_mask.bool()].mean()
        self._log_rewards(mode, self.beta * chosen_ratio.detach(), self.beta * rejected_ratio.detach())
        if return_outputs:  # the fused head gives no logits: recompute them for `compute_metrics`
            with torch.no_grad():
                outputs = model(**model_inputs)
        return (loss, outputs) if return_outputs else loss

    def _log_rewards(self, mode: str, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen).mean().item())
        metrics["rewards/rejected"].append(gather(rejected).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen > rejected).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen - rejected).mean().item())


def hand_written_losses(
    loss_type: str, chosen_ratio: torch.Tensor, rejected_ratio: torch.Tensor, beta: float, label_smoothing: float
) -> torch.Tensor:
    """Per-example losses from the policy / reference log-ratios of chosen and rejected answers, as TRL 0.9 (which
    LLaMA-Factory used) computed them.

    cdpo: the sigmoid loss when each preference label is flipped with probability `label_smoothing`.
    kto_pair: KTO on pairs, each side's KL baseline estimated from the other side's ratios in the batch.
    """
    if loss_type == "cdpo":
        logits = beta * (chosen_ratio - rejected_ratio)
        return -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing
    if loss_type == "kto_pair":
        chosen_kl, rejected_kl = chosen_ratio.mean().clamp(min=0), rejected_ratio.mean().clamp(min=0)
        chosen_losses = 1 - F.sigmoid(beta * (chosen_ratio - rejected_kl))
        rejected_losses = 1 - F.sigmoid(beta * (chosen_kl - rejected_ratio))
        return torch.cat((chosen_losses, rejected_losses))
    raise ValueError(f"unknown hand-written DPO loss {loss_type!r}; expected one of {HAND_WRITTEN_DPO_LOSSES}")


class OddsRatioTrainer(PretokenizedMixin, ORPOTrainer):
    """TRL's ORPOTrainer on lf-ray's tokenized pairs."""


class SimPOTrainer(PretokenizedMixin, CPOTrainer):
    """TRL's CPOTrainer (`loss_type="simpo"`) on lf-ray's tokenized pairs."""


REFERENCE_FREE_TRAINERS: dict[str, type[Trainer]] = {"orpo": OddsRatioTrainer, "simpo": SimPOTrainer}


def build_trainer(ctx: StageContext) -> Trainer:
    reference_free = REFERENCE_FREE_TRAINERS.get(ctx.cfg.finetuning.pref_loss)
    if reference_free is not None:
        collator = PairedSidesCollator(pad_token_id=ctx.pad_token_id, pad_to_multiple_of=ctx.pad_to_multiple_of)
    else:
        collator = PairwiseCollator(pad_token_id=ctx.pad_token_id, pad_to_multiple_of=ctx.pad_to_multiple_of)
    metrics = None  # the trainers log reward accuracy, margins and log-probs themselves
    common = {
        "model": ctx.model,
        "args": ctx.training_args,
        "data_collator": collator,
        "train_dataset": ctx.train_dataset,
        "eval_dataset": ctx.eval_dataset,
        "processing_class": ctx.tokenizer,
        "compute_metrics": metrics,
        "callbacks": trainer_callbacks(ctx),
        "optimizers": ctx.optimizers,
    }
    if reference_free is not None:
        return reference_free(**common)
    return PreferenceTrainer(ref_model=reference_model(ctx), **common)
