"""LLaMA-Factory's SFT loss variants, each a reweighted next-token cross-entropy over the answer tokens:

- DFT (`use_dft_loss`, arXiv 2508.05629): each token's loss times its own probability under the model (no grad
  through the weight), so confidently-known tokens count and guesses count less;
- EAFT (`use_eaft_loss`, `eaft_alpha`): each token's loss times (H / 3) ** alpha, H the entropy of the model's
  top-20 next-token distribution (no grad), so uncertain positions count more;
- ASFT (`use_asft_loss`, `asft_alpha`): the DFT loss plus `asft_alpha` times KL(reference || model) per answer
  token, anchoring the model to a frozen reference (`ref_model`, else the adapter switched off under LoRA, else a
  frozen copy of the starting weights).

DFT and EAFT divide by the number of answer tokens in the accumulated batch (`num_items_in_batch`) as the
standard loss does; ASFT averages over the micro-batch, as LLaMA-Factory does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from lf_ray.constants import IGNORE_INDEX

EAFT_TOP_K = 20
EAFT_ENTROPY_SCALE = 3.0


def _next_token_pairs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the label each predicts, flattened, over the answer tokens only."""
    shift_logits = logits[..., :-1, :].float().reshape(-1, logits.size(-1))
    shift_labels = labels[..., 1:].reshape(-1).to(shift_logits.device)
    answer = shift_labels != IGNORE_INDEX
    return shift_logits[answer], shift_labels[answer]


def _reduce(weighted: torch.Tensor, num_items_in_batch: torch.Tensor | int | None) -> torch.Tensor:
    if num_items_in_batch is None:
        return weighted.mean()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(weighted.device)
    return weighted.sum() / num_items_in_batch


def dft_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    logits, targets = _next_token_pairs(outputs["logits"], labels)
    if targets.numel() == 0:
        return outputs["logits"].sum() * 0.0
    losses = F.cross_entropy(logits, targets, reduction="none")
    return _reduce(losses * torch.exp(-losses.detach()), num_items_in_batch)


def eaft_loss(alpha: float) -> Callable[..., torch.Tensor]:
    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        logits, targets = _next_token_pairs(outputs["logits"], labels)
        if targets.numel() == 0:
            return outputs["logits"].sum() * 0.0
        losses = F.cross_entropy(logits, targets, reduction="none")
        with torch.no_grad():
            top = torch.topk(logits, k=min(EAFT_TOP_K, logits.size(-1)), dim=-1).values
            log_probs = top - torch.logsumexp(top, dim=-1, keepdim=True)
            entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
            weight = (entropy / EAFT_ENTROPY_SCALE) ** alpha
        return _reduce(losses * weight, num_items_in_batch)

    return loss


def asft_loss(logits: torch.Tensor, reference_logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    policy, targets = _next_token_pairs(logits, labels)
    if targets.numel() == 0:
        return logits.sum() * 0.0
    reference, _ = _next_token_pairs(reference_logits, labels)
    losses = F.cross_entropy(policy, targets, reduction="none")
    dft = (losses * torch.exp(-losses.detach())).mean()
    kl = F.kl_div(F.log_softmax(policy, dim=-1), F.log_softmax(reference, dim=-1), log_target=True, reduction="none")
    return dft + alpha * kl.sum(dim=-1).mean()


def loss_function(cfg: Any) -> Callable[..., torch.Tensor] | None:
    """`compute_loss_func` for the trainer: DFT or EAFT; None for cross-entropy (and for ASFT, which needs the
    reference model's logits: `AnchoredTrainer`)."""
    ft = cfg.finetuning
    if ft.use_dft_loss:
        return dft_loss
    if ft.use_eaft_loss:
        return eaft_loss(ft.eaft_alpha)
    return None
