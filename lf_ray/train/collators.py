"""Batch collators: lf-ray's tokenized rows (LLaMA-Factory's columns) → padded tensors for each stage's trainer.

Rows come from the preprocess step already cut to `cutoff_len`, so collators only pad (on the right) and pick
their columns: extra columns such as `_origin` are ignored, which is why training runs with
`remove_unused_columns=False`.

- `PretrainCollator` (pt): ids and masks; labels are the ids, padding masked.
- `SupervisedCollator` (sft): ids, masks, labels (+ `position_ids` when packed; a 4D mask with `neat_packing`).
- `PairwiseCollator` (rm, dpo on TRL's DPOTrainer): chosen rows, then rejected rows, in one batch
  (+ `completion_mask` for DPO).
- `PairedSidesCollator` (dpo with ORPO or SimPO): `chosen_*` and `rejected_*` padded side by side.
- `FeedbackCollator` (kto): the answer and its KL pair under TRL's KTO keys (`completion_mask`, `KL_*`, `label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lf_ray.constants import IGNORE_INDEX

Features = Sequence[dict[str, Any]]
Batch = dict[str, torch.Tensor]


def pad_right(rows: Sequence[Sequence[int]], value: int, pad_to_multiple_of: int | None = None) -> torch.Tensor:
    """A `[len(rows), longest]` int64 tensor, each row padded on the right with `value`."""
    longest = max(len(row) for row in rows)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    out = torch.full((len(rows), longest), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def block_diagonal_causal_mask(segment_ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`[batch, seq]` segment ids (1, 2, 3 ... per packed sequence, 0 = padding) → `[batch, 1, seq, seq]` additive
    mask: 0 where a token may attend (same sequence, not ahead of it), the dtype's minimum elsewhere.

    LLaMA-Factory's `prepare_4d_attention_mask`: attention never crosses a packed sequence's boundary.
    """
    seq_len = segment_ids.size(1)
    same_segment = segment_ids.unsqueeze(1).unsqueeze(2) == segment_ids.unsqueeze(1).unsqueeze(3)
    not_padding = (segment_ids != 0).unsqueeze(1).unsqueeze(2)
    causal = torch.tril(torch.ones((seq_len, seq_len), dtype=torch.bool, device=segment_ids.device))
    allowed = same_segment & not_padding & causal
    zero = torch.zeros((), dtype=dtype, device=segment_ids.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


@dataclass
class PretrainCollator:
    """pt: causal LM labels are the input ids themselves, with padding masked out of the loss."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Features) -> Batch:
        input_ids = pad_right([f["input_ids"] for f in features], self.pad_token_id, self.pad_to_multiple_of)
        attention_mask = pad_right([f["attention_mask"] for f in features], 0, self.pad_to_multiple_of)
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass
class SupervisedCollator:
    """sft: pad ids, masks and labels (-100); packed rows also carry `position_ids`.

    With `neat_packing` the attention mask holds segment ids; it becomes a block-diagonal causal 4D mask in
    `mask_dtype` (the model's dtype), or, for flash attention, is dropped so that the restarting
    `position_ids` mark the sequence boundaries.
    """

    pad_token_id: int
    neat_packing: bool = False
    attn_implementation: str | None = None
    mask_dtype: torch.dtype = torch.float32
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = IGNORE_INDEX
    """What padding is labelled with: -100 (no loss), or the pad id when `ignore_pad_token_for_loss` is off."""

    def __call__(self, features: Features) -> Batch:
        multiple = self.pad_to_multiple_of
        batch = {
            "input_ids": pad_right([f["input_ids"] for f in features], self.pad_token_id, multiple),
            "attention_mask": pad_right([f["attention_mask"] for f in features], 0, multiple),
            "labels": pad_right([f["labels"] for f in features], self.label_pad_token_id, multiple),
        }
        if features[0].get("position_ids") is not None:
            batch["position_ids"] = pad_right([f["position_ids"] for f in features], 0, multiple)
        if self.neat_packing:
            if "flash" in (self.attn_implementation or ""):
                del batch["attention_mask"]
            else:
                batch["attention_mask"] = block_diagonal_causal_mask(batch["attention_mask"], self.mask_dtype)
        return batch


@dataclass
class PairwiseCollator:
    """rm / dpo: the chosen sequences, then the rejected ones, in one batch of `2 * len(features)` rows
    (LLaMA-Factory's `PairwiseDataCollatorWithPadding`).

    `completion_mask` (1 on answer tokens: where the labels are not -100) is what TRL's DPOTrainer scores;
    TRL's RewardTrainer hands every key to the model, so it gets ids and masks only. Reference log-probs that
    TRL precomputed (`ref_chosen_logps`, `ref_rejected_logps`) pass through.
    """

    pad_token_id: int
    completion_mask: bool = True
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Features) -> Batch:
        sides = ("chosen", "rejected")
        rows = {key: [f[f"{side}_{key}"] for side in sides for f in features] for key in ("input_ids", "labels")}
        masks = [f[f"{side}_attention_mask"] for side in sides for f in features]
        batch = {
            "input_ids": pad_right(rows["input_ids"], self.pad_token_id, self.pad_to_multiple_of),
            "attention_mask": pad_right(masks, 0, self.pad_to_multiple_of),
        }
        if self.completion_mask:
            labels = pad_right(rows["labels"], IGNORE_INDEX, self.pad_to_multiple_of)
            batch["completion_mask"] = (labels != IGNORE_INDEX).long()
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in features[0]:
                batch[key] = torch.tensor([f[key] for f in features])
        return batch


@dataclass
class PairedSidesCollator:
    """dpo with ORPO / SimPO: chosen and rejected each padded under their own keys, as TRL's ORPO and CPO
    trainers read them (`chosen_input_ids`, `chosen_attention_mask`, `chosen_labels`, `rejected_...`)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Features) -> Batch:
        pads = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        return {
            f"{side}_{key}": pad_right([f[f"{side}_{key}"] for f in features], value, self.pad_to_multiple_of)
            for side in ("chosen", "rejected")
            for key, value in pads.items()
        }


@dataclass
class FeedbackCollator:
    """kto: the answer and its mismatched KL pair (built by the preprocess step from another row), under TRL's
    KTOTrainer keys: `input_ids`, `attention_mask`, `completion_mask`, the same with a `KL_` prefix, and `label`
    (`kto_tags`: desirable or not)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Features) -> Batch:
        batch: Batch = {}
        for source, target in (("", ""), ("kl_", "KL_")):
            input_ids = [f[f"{source}input_ids"] for f in features]
            labels = pad_right([f[f"{source}labels"] for f in features], IGNORE_INDEX, self.pad_to_multiple_of)
            batch[f"{target}input_ids"] = pad_right(input_ids, self.pad_token_id, self.pad_to_multiple_of)
            batch[f"{target}attention_mask"] = pad_right(
                [f[f"{source}attention_mask"] for f in features], 0, self.pad_to_multiple_of
            )
            batch[f"{target}completion_mask"] = (labels != IGNORE_INDEX).long()
        batch["label"] = torch.tensor([bool(f["kto_tags"]) for f in features])
        for key in ("ref_logps", "ref_KL_logps"):
            if key in features[0]:
                batch[key] = torch.tensor([f[key] for f in features])
        return batch
