"""Packing: several short sequences in one row of cutoff_len, the way LLaMA-Factory lays them out.

Pure functions over the whole split (so the result never depends on how rows were batched).
- sft: greedy knapsack; plain packing marks every real token with attention 1, `neat_packing` numbers the
  sequences 1, 2, 3 ... in `attention_mask` (padding 0) so attention never crosses a sequence boundary;
  `position_ids` restart at 0 for every packed sequence. Packs are padded to cutoff_len + 1.
- pt: documents are concatenated and cut into blocks of cutoff_len (the remainder is dropped).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from lf_ray.constants import IGNORE_INDEX

Row = dict[str, Any]


def search_for_fit(numbers: list[int], capacity: int) -> int:
    """Index of the largest number that fits the capacity (numbers sorted ascending), or -1."""
    index = bisect.bisect(numbers, capacity)
    return -1 if index == 0 else index - 1


def greedy_knapsack(numbers: list[int], capacity: int) -> list[list[int]]:
    """Fill knapsacks one by one, always taking the largest length that still fits."""
    numbers = sorted(numbers)
    knapsacks = []
    while numbers:
        knapsack, remaining = [], capacity
        while (index := search_for_fit(numbers, remaining)) != -1:
            remaining -= numbers[index]
            knapsack.append(numbers.pop(index))
        if not knapsack:  # a number larger than the capacity can never be placed
            raise ValueError(f"length {numbers[0]} exceeds the knapsack capacity {capacity}")
        knapsacks.append(knapsack)
    return knapsacks


def pack_supervised(rows: list[Row], cutoff_len: int, pad_token_id: int, neat_packing: bool) -> tuple[list[Row], int]:
    """Packed rows, and how many input rows were too long to pack (they are dropped, and counted)."""
    lengths, length_to_indexes, kept = [], defaultdict(list), []
    too_long = 0
    for row in rows:
        length = len(row["input_ids"])
        if length > cutoff_len:
            too_long += 1
            continue
        lengths.append(length)
        length_to_indexes[length].append(len(kept))
        kept.append(row)

    packed = []
    for knapsack in greedy_knapsack(lengths, cutoff_len):
        input_ids: list[int] = []
        attention_mask: list[int] = []
        position_ids: list[int] = []
        labels: list[int] = []
        for segment, length in enumerate(knapsack, start=1):
            row = kept[length_to_indexes[length].pop()]
            input_ids += row["input_ids"]
            labels += row["labels"]
            position_ids += list(range(length))
            attention_mask += [segment if neat_packing else 1] * length
        pad_length = cutoff_len + 1 - len(input_ids)  # never 0: LF pads so flash-attn keeps the mask
        input_ids += [pad_token_id] * pad_length
        labels += [IGNORE_INDEX] * pad_length
        position_ids += [0] * pad_length
        attention_mask += [0 if neat_packing else 1] * pad_length
        packed.append(
            {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids, "labels": labels}
        )
    return packed, too_long


def chunk_pretrain(rows: list[Row], cutoff_len: int, bos_token_id: int | None) -> list[Row]:
    """Concatenate documents in order and cut blocks of cutoff_len; each block starts with bos if the model wants."""
    stream = [token for row in rows for token in row["input_ids"]]
    usable = len(stream) // cutoff_len * cutoff_len
    blocks = [stream[start : start + cutoff_len] for start in range(0, usable, cutoff_len)]
    if bos_token_id is not None:
        for block in blocks:
            block[0] = bos_token_id
    return [{"input_ids": block, "attention_mask": [1] * cutoff_len} for block in blocks]


def truncate_pretrain(rows: list[Row], cutoff_len: int) -> list[Row]:
    """Without packing, each document is cut to cutoff_len."""
    return [
        {
            **row,
            "input_ids": row["input_ids"][:cutoff_len],
            "attention_mask": row["attention_mask"][:cutoff_len],
            "_truncated": len(row["input_ids"]) > cutoff_len,
        }
        for row in rows
    ]
