"""Evaluation metrics the stage trainers compute themselves (`compute_accuracy` for sft).

TRL's preference trainers (rm, dpo, kto) log their own: reward accuracy and margins, log-probs, KL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lf_ray.constants import IGNORE_INDEX

if TYPE_CHECKING:
    import torch
    from transformers import EvalPrediction


def predicted_tokens(logits: torch.Tensor | tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
    """`preprocess_logits_for_metrics`: keep the argmax token ids, not `[batch, seq, vocab]` logits."""
    if isinstance(logits, (list, tuple)):
        logits = logits[0]
    return logits.argmax(dim=-1)


def token_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Share of answer tokens predicted right, averaged over sequences (LLaMA-Factory's `ComputeAccuracy`).

    Position t predicts token t + 1; tokens labelled -100 (prompt, padding) are not counted.
    """
    preds, labels = np.asarray(prediction.predictions), np.asarray(prediction.label_ids)
    scores = []
    for pred, label in zip(preds[:, :-1], labels[:, 1:], strict=True):
        mask = label != IGNORE_INDEX
        if mask.any():
            scores.append(float(np.mean(pred[mask] == label[mask])))
    return {"accuracy": float(np.mean(scores)) if scores else 0.0}
