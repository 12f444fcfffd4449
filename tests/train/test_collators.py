"""Collators: exact padded tensors from tiny hand-made rows, and the neat-packing mask inside a real model."""

from __future__ import annotations

import pytest
import torch

from lf_ray.train.collators import (
    FeedbackCollator,
    PairedSidesCollator,
    PairwiseCollator,
    PretrainCollator,
    SupervisedCollator,
    block_diagonal_causal_mask,
    pad_right,
)

IGN = -100
PAD = 0


def _equal(batch: dict[str, torch.Tensor], expected: dict[str, list]) -> None:
    assert set(batch) == set(expected)
    for key, value in expected.items():
        assert batch[key].tolist() == value, key


def test_pad_right_rounds_up_to_a_multiple():
    assert pad_right([[1, 2, 3], [4]], 9).tolist() == [[1, 2, 3], [4, 9, 9]]
    assert pad_right([[1, 2, 3], [4]], 9, pad_to_multiple_of=4).tolist() == [[1, 2, 3, 9], [4, 9, 9, 9]]
    assert pad_right([[1, 2, 3, 4]], 9, pad_to_multiple_of=4).tolist() == [[1, 2, 3, 4]]


def test_pretrain_labels_are_the_ids_with_padding_masked_by_attention():
    # the pad id (7) is also a real token of the first row: only the attention mask tells them apart
    rows = [{"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1]}, {"input_ids": [8, 9], "attention_mask": [1, 1]}]
    _equal(
        PretrainCollator(pad_token_id=7)(rows),
        {
            "input_ids": [[5, 6, 7], [8, 9, 7]],
            "attention_mask": [[1, 1, 1], [1, 1, 0]],
            "labels": [[5, 6, 7], [8, 9, IGN]],
        },
    )


def test_supervised_pads_labels_with_ignore_index_and_ignores_extra_columns():
    rows = [
        {"input_ids": [1, 2, 3, 4], "attention_mask": [1, 1, 1, 1], "labels": [IGN, IGN, 3, 4], "_origin": "a"},
        {"input_ids": [5, 6], "attention_mask": [1, 1], "labels": [IGN, 6], "_origin": "b"},
    ]
    _equal(
        SupervisedCollator(pad_token_id=PAD)(rows),
        {
            "input_ids": [[1, 2, 3, 4], [5, 6, PAD, PAD]],
            "attention_mask": [[1, 1, 1, 1], [1, 1, 0, 0]],
            "labels": [[IGN, IGN, 3, 4], [IGN, 6, IGN, IGN]],
        },
    )
    padded = SupervisedCollator(pad_token_id=PAD, pad_to_multiple_of=8)(rows)
    assert padded["input_ids"].shape == (2, 8)
    assert padded["labels"][1].tolist() == [IGN, 6] + [IGN] * 6


# LLaMA-Factory's `prepare_4d_attention_mask` example: two packed sequences (2 and 3 tokens) and one pad.
NEAT_ROW = {
    "input_ids": [11, 12, 21, 22, 23, PAD],
    "attention_mask": [1, 1, 2, 2, 2, 0],
    "position_ids": [0, 1, 0, 1, 2, 0],
    "labels": [IGN, 12, IGN, 22, 23, IGN],
}
ALLOWED = [
    [1, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0],
    [0, 0, 1, 1, 0, 0],
    [0, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0],
]


def test_block_diagonal_causal_mask_of_a_two_sequence_pack():
    mask = block_diagonal_causal_mask(torch.tensor([NEAT_ROW["attention_mask"]]), torch.float32)
    low = torch.finfo(torch.float32).min
    assert mask.shape == (1, 1, 6, 6)
    assert mask.dtype == torch.float32
    assert mask[0, 0].tolist() == [[0.0 if ok else low for ok in row] for row in ALLOWED]


def test_neat_packing_collator_gives_the_4d_mask_and_position_ids():
    batch = SupervisedCollator(pad_token_id=PAD, neat_packing=True, mask_dtype=torch.bfloat16)([NEAT_ROW])
    assert batch["attention_mask"].shape == (1, 1, 6, 6)
    assert batch["attention_mask"].dtype == torch.bfloat16
    assert (batch["attention_mask"][0, 0] == 0).int().tolist() == ALLOWED
    assert batch["position_ids"].tolist() == [NEAT_ROW["position_ids"]]
    assert batch["labels"].tolist() == [NEAT_ROW["labels"]]


def test_neat_packing_under_flash_attention_drops_the_mask_and_keeps_position_ids():
    batch = SupervisedCollator(pad_token_id=PAD, neat_packing=True, attn_implementation="flash_attention_2")([NEAT_ROW])
    assert "attention_mask" not in batch
    assert batch["position_ids"].tolist() == [NEAT_ROW["position_ids"]]


def test_plain_packing_keeps_the_2d_mask():
    row = {**NEAT_ROW, "attention_mask": [1, 1, 1, 1, 1, 1]}
    batch = SupervisedCollator(pad_token_id=PAD)([row])
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1]]
    assert batch["position_ids"].tolist() == [NEAT_ROW["position_ids"]]


PAIRS = [
    {
        "chosen_input_ids": [1, 2, 3, 4],
        "chosen_attention_mask": [1, 1, 1, 1],
        "chosen_labels": [IGN, IGN, 3, 4],
        "rejected_input_ids": [1, 2, 5],
        "rejected_attention_mask": [1, 1, 1],
        "rejected_labels": [IGN, IGN, 5],
        "_origin": "row 1",
    },
    {
        "chosen_input_ids": [6, 7],
        "chosen_attention_mask": [1, 1],
        "chosen_labels": [IGN, 7],
        "rejected_input_ids": [6, 8, 9],
        "rejected_attention_mask": [1, 1, 1],
        "rejected_labels": [IGN, 8, 9],
        "_origin": "row 2",
    },
]


def test_pairwise_puts_every_chosen_row_before_every_rejected_row():
    _equal(
        PairwiseCollator(pad_token_id=PAD)(PAIRS),
        {
            "input_ids": [[1, 2, 3, 4], [6, 7, PAD, PAD], [1, 2, 5, PAD], [6, 8, 9, PAD]],
            "attention_mask": [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]],
            "completion_mask": [[0, 0, 1, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0]],
        },
    )


def test_pairwise_for_the_reward_model_has_no_completion_mask_and_passes_reference_logps():
    assert set(PairwiseCollator(pad_token_id=PAD, completion_mask=False)(PAIRS)) == {"input_ids", "attention_mask"}
    rows = [{**row, "ref_chosen_logps": -1.5, "ref_rejected_logps": -2.5} for row in PAIRS]
    batch = PairwiseCollator(pad_token_id=PAD)(rows)
    assert batch["ref_chosen_logps"].tolist() == [-1.5, -1.5]
    assert batch["ref_rejected_logps"].tolist() == [-2.5, -2.5]


def test_paired_sides_pads_each_side_on_its_own():
    _equal(
        PairedSidesCollator(pad_token_id=PAD)(PAIRS),
        {
            "chosen_input_ids": [[1, 2, 3, 4], [6, 7, PAD, PAD]],
            "chosen_attention_mask": [[1, 1, 1, 1], [1, 1, 0, 0]],
            "chosen_labels": [[IGN, IGN, 3, 4], [IGN, 7, IGN, IGN]],
            "rejected_input_ids": [[1, 2, 5], [6, 8, 9]],
            "rejected_attention_mask": [[1, 1, 1], [1, 1, 1]],
            "rejected_labels": [[IGN, IGN, 5], [IGN, 8, 9]],
        },
    )


def test_feedback_gives_trl_kto_keys_with_our_kl_pairs():
    rows = [
        {
            "input_ids": [1, 2, 3],
            "attention_mask": [1, 1, 1],
            "labels": [IGN, 2, 3],
            "kl_input_ids": [1, 4],
            "kl_attention_mask": [1, 1],
            "kl_labels": [IGN, 4],
            "kto_tags": True,
        },
        {
            "input_ids": [5, 6],
            "attention_mask": [1, 1],
            "labels": [IGN, 6],
            "kl_input_ids": [5, 7, 8],
            "kl_attention_mask": [1, 1, 1],
            "kl_labels": [IGN, 7, 8],
            "kto_tags": False,
        },
    ]
    _equal(
        FeedbackCollator(pad_token_id=PAD)(rows),
        {
            "input_ids": [[1, 2, 3], [5, 6, PAD]],
            "attention_mask": [[1, 1, 1], [1, 1, 0]],
            "completion_mask": [[0, 1, 1], [0, 1, 0]],
            "KL_input_ids": [[1, 4, PAD], [5, 7, 8]],
            "KL_attention_mask": [[1, 1, 0], [1, 1, 1]],
            "KL_completion_mask": [[0, 1, 0], [0, 1, 1]],
            "label": [True, False],
        },
    )


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_neat_pack_gives_each_sequence_the_logits_it_has_alone(tiny_llama_path, attn_implementation):
    """The 4D mask and restarting positions make a pack compute exactly what its sequences compute apart."""
    from lf_ray.model.loader import load_causal_lm

    model = load_causal_lm(tiny_llama_path, attn_implementation=attn_implementation).eval()
    first, second = [5, 6, 7, 8], [9, 10, 11]
    row = {
        "input_ids": first + second + [PAD],
        "attention_mask": [1] * 4 + [2] * 3 + [0],
        "position_ids": [0, 1, 2, 3, 0, 1, 2, 0],
        "labels": first + second + [IGN],
    }
    batch = SupervisedCollator(pad_token_id=PAD, neat_packing=True, attn_implementation=attn_implementation)([row])
    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        alone = [model(input_ids=torch.tensor([ids])).logits[0] for ids in (first, second)]
    torch.testing.assert_close(packed[:4], alone[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(packed[4:7], alone[1], rtol=1e-4, atol=1e-5)
