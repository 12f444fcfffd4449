"""Packing in LLaMA-Factory's layout: greedy knapsack, cutoff_len + 1 rows, segment ids, restarting positions."""

from __future__ import annotations

import pytest

from lf_ray.data.packing import chunk_pretrain, greedy_knapsack, pack_supervised, search_for_fit, truncate_pretrain

PAD, IGNORE = 0, -100


def sequence(*ids: int, prompt: int = 1) -> dict:
    """A tokenized sft row: the first `prompt` tokens are masked out of the labels."""
    return {"input_ids": list(ids), "labels": [IGNORE] * prompt + list(ids[prompt:])}


@pytest.mark.parametrize(("capacity", "index"), [(0, -1), (1, 0), (4, 1), (5, 2), (6, 2), (9, 4), (100, 4)])
def test_search_for_fit(capacity, index):
    assert search_for_fit([1, 3, 5, 7, 9], capacity) == index


def test_search_for_fit_in_an_empty_list():
    assert search_for_fit([], 10) == -1


@pytest.mark.parametrize(
    ("numbers", "capacity", "knapsacks"),
    [
        ([], 10, []),
        ([5], 10, [[5]]),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, [[10], [9, 1], [8, 2], [7, 3], [6, 4], [5]]),
        ([5, 5, 5, 5], 10, [[5, 5], [5, 5]]),
        ([2, 3, 4, 5, 6], 10, [[6, 4], [5, 3, 2]]),
        ([6, 5, 4, 3, 2], 10, [[6, 4], [5, 3, 2]]),
        ([3, 3, 3], 8, [[3, 3], [3]]),
    ],
)
def test_greedy_knapsack(numbers, capacity, knapsacks):
    assert greedy_knapsack(numbers, capacity) == knapsacks


def test_greedy_knapsack_leaves_its_input_alone():
    numbers = [4, 1, 3]
    greedy_knapsack(numbers, 5)
    assert numbers == [4, 1, 3]


def test_greedy_knapsack_refuses_a_number_above_capacity():
    with pytest.raises(ValueError, match="length 11 exceeds the knapsack capacity 10"):
        greedy_knapsack([3, 11], 10)


THREE = [sequence(11, 12, 13), sequence(21, 22), sequence(31, 32, 33, 34, prompt=2)]


def test_neat_packing_layout_for_three_short_sequences():
    # lengths 3, 2, 4 in cutoff 10: one knapsack [4, 3, 2] (largest first), padded to cutoff_len + 1 = 11
    packed, too_long = pack_supervised(THREE, cutoff_len=10, pad_token_id=PAD, neat_packing=True)
    assert too_long == 0
    assert packed == [
        {
            "input_ids": [31, 32, 33, 34, 11, 12, 13, 21, 22, PAD, PAD],
            "attention_mask": [1, 1, 1, 1, 2, 2, 2, 3, 3, 0, 0],
            "position_ids": [0, 1, 2, 3, 0, 1, 2, 0, 1, 0, 0],
            "labels": [IGNORE, IGNORE, 33, 34, IGNORE, 12, 13, IGNORE, 22, IGNORE, IGNORE],
        }
    ]


def test_plain_packing_marks_every_token_including_padding():
    packed, _ = pack_supervised(THREE, cutoff_len=10, pad_token_id=PAD, neat_packing=False)
    assert packed[0]["attention_mask"] == [1] * 11
    assert packed[0]["position_ids"] == [0, 1, 2, 3, 0, 1, 2, 0, 1, 0, 0]
    assert packed[0]["input_ids"] == [31, 32, 33, 34, 11, 12, 13, 21, 22, PAD, PAD]


def test_full_pack_still_gets_one_pad_token():
    packed, _ = pack_supervised([sequence(1, 2, 3, 4)], cutoff_len=4, pad_token_id=9, neat_packing=True)
    assert packed == [
        {
            "input_ids": [1, 2, 3, 4, 9],
            "attention_mask": [1, 1, 1, 1, 0],
            "position_ids": [0, 1, 2, 3, 0],
            "labels": [IGNORE, 2, 3, 4, IGNORE],
        }
    ]


def test_too_long_rows_are_dropped_and_counted():
    rows = [sequence(1, 2, 3, 4, 5, 6), sequence(7, 8), sequence(1, 2, 3, 4, 5)]
    packed, too_long = pack_supervised(rows, cutoff_len=5, pad_token_id=PAD, neat_packing=False)
    assert too_long == 1
    assert [row["input_ids"] for row in packed] == [[1, 2, 3, 4, 5, PAD], [7, 8, PAD, PAD, PAD, PAD]]


def test_equal_lengths_are_taken_last_first_like_lf():
    rows = [sequence(1, 2), sequence(3, 4), sequence(5, 6)]
    packed, _ = pack_supervised(rows, cutoff_len=3, pad_token_id=PAD, neat_packing=True)
    assert [row["input_ids"] for row in packed] == [[5, 6, PAD, PAD], [3, 4, PAD, PAD], [1, 2, PAD, PAD]]


def test_every_pack_is_cutoff_plus_one_long():
    rows = [sequence(*range(1, n + 1)) for n in (7, 1, 5, 3, 8, 2, 2)]
    packed, _ = pack_supervised(rows, cutoff_len=8, pad_token_id=PAD, neat_packing=True)
    assert all(len(row[key]) == 9 for row in packed for key in row)
    assert sum(sum(1 for mask in row["attention_mask"] if mask) for row in packed) == 28


def test_pt_chunking_drops_the_remainder_and_puts_bos_first():
    rows = [{"input_ids": [1, 2, 3, 4, 5]}, {"input_ids": [6, 7, 8, 9]}]
    assert chunk_pretrain(rows, cutoff_len=4, bos_token_id=0) == [
        {"input_ids": [0, 2, 3, 4], "attention_mask": [1, 1, 1, 1]},
        {"input_ids": [0, 6, 7, 8], "attention_mask": [1, 1, 1, 1]},
    ]


def test_pt_chunking_without_bos_keeps_the_tokens():
    rows = [{"input_ids": [1, 2, 3]}, {"input_ids": [4, 5, 6, 7]}]
    assert chunk_pretrain(rows, cutoff_len=3, bos_token_id=None) == [
        {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1]},
        {"input_ids": [4, 5, 6], "attention_mask": [1, 1, 1]},
    ]


def test_pt_chunking_of_too_little_text_gives_nothing():
    assert chunk_pretrain([{"input_ids": [1, 2]}], cutoff_len=3, bos_token_id=0) == []


def test_truncate_pretrain_cuts_each_document_and_flags_it():
    rows = [
        {"input_ids": [1, 2, 3, 4], "attention_mask": [1, 1, 1, 1], "_origin": "c4 row 0"},
        {"input_ids": [5, 6], "attention_mask": [1, 1], "_origin": "c4 row 1"},
    ]
    assert truncate_pretrain(rows, cutoff_len=3) == [
        {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "_origin": "c4 row 0", "_truncated": True},
        {"input_ids": [5, 6], "attention_mask": [1, 1], "_origin": "c4 row 1", "_truncated": False},
    ]
