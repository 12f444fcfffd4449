"""Processors: token ids and label masks per stage, with LLaMA-Factory's columns and truncation."""

from __future__ import annotations

import pytest

from lf_ray.constants import IGNORE_INDEX
from lf_ray.data.converters import canonical_row
from lf_ray.data.processors import (
    EncodeSettings,
    encode_feedback,
    encode_pairwise,
    encode_pretrain,
    encode_row,
    encode_supervised,
    encode_unsupervised,
    infer_seqlen,
    processor_kind,
)
from lf_ray.data.templates import resolve_template

USER, ASSISTANT = "user", "assistant"


def msg(role, content):
    return {"role": role, "content": content}


TWO_TURNS = canonical_row(
    [msg(USER, "Hi"), msg(ASSISTANT, "Hello!"), msg(USER, "Who are you?")], [msg(ASSISTANT, "I am Lumen.")]
)


@pytest.fixture
def llama3(llama_tokenizer):
    return resolve_template(llama_tokenizer, "llama3"), llama_tokenizer


def _ids(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [
        ((3000, 2000, 1000), (600, 400)),
        ((2000, 3000, 1000), (400, 600)),
        ((1000, 100, 1000), (900, 100)),
        ((100, 1000, 1000), (100, 900)),
        ((100, 500, 1000), (100, 500)),
        ((500, 100, 1000), (500, 100)),
        ((10, 10, 1000), (10, 10)),
    ],
)
def test_infer_seqlen_splits_budget_like_llamafactory(lengths, expected):
    assert infer_seqlen(*lengths) == expected


def test_sft_masks_every_prompt_and_keeps_every_answer(llama3):
    template, tokenizer = llama3
    row = encode_supervised(template, tokenizer, TWO_TURNS, EncodeSettings(cutoff_len=1024))
    pairs = template.encode_multiturn(tokenizer, TWO_TURNS["_prompt"] + TWO_TURNS["_response"])
    (s0, t0), (s1, t1) = pairs
    assert row["input_ids"] == s0 + t0 + s1 + t1
    assert row["labels"] == [IGNORE_INDEX] * len(s0) + t0 + [IGNORE_INDEX] * len(s1) + t1
    assert row["attention_mask"] == [1] * len(row["input_ids"])
    assert t1 == _ids(tokenizer, "I am Lumen.<|eot_id|>")
    assert row["labels"][-1] == tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert row["_drop_reason"] is None and row["_truncated"] is False


def test_sft_mask_history_trains_on_the_last_answer_only(llama3):
    template, tokenizer = llama3
    row = encode_supervised(template, tokenizer, TWO_TURNS, EncodeSettings(cutoff_len=1024, mask_history=True))
    (s0, t0), (s1, t1) = template.encode_multiturn(tokenizer, TWO_TURNS["_prompt"] + TWO_TURNS["_response"])
    assert row["input_ids"] == s0 + t0 + s1 + t1
    assert row["labels"] == [IGNORE_INDEX] * (len(s0) + len(t0) + len(s1)) + t1


def test_sft_train_on_prompt_labels_everything(llama3):
    template, tokenizer = llama3
    row = encode_supervised(template, tokenizer, TWO_TURNS, EncodeSettings(cutoff_len=1024, train_on_prompt=True))
    assert row["labels"] == row["input_ids"]


def test_sft_efficient_eos_puts_eos_at_turn_starts_and_end(llama_tokenizer):
    template = resolve_template(llama_tokenizer, "fewshot")
    row = encode_supervised(template, llama_tokenizer, TWO_TURNS, EncodeSettings(cutoff_len=1024))
    eos = llama_tokenizer.eos_token_id
    (s0, t0), (s1, t1) = template.encode_multiturn(llama_tokenizer, TWO_TURNS["_prompt"] + TWO_TURNS["_response"])
    assert row["input_ids"] == s0 + t0 + s1 + t1 + [eos]
    assert row["labels"] == [IGNORE_INDEX] * len(s0) + t0 + [eos] + [IGNORE_INDEX] * (len(s1) - 1) + t1 + [eos]


def test_sft_truncation_respects_cutoff_and_is_reported(llama3):
    template, tokenizer = llama3
    long_row = canonical_row([msg(USER, "word " * 200)], [msg(ASSISTANT, "answer " * 200)])
    row = encode_supervised(template, tokenizer, long_row, EncodeSettings(cutoff_len=64))
    assert len(row["input_ids"]) == 64 and len(row["labels"]) == 64
    assert row["_truncated"] is True
    ((source, target),) = template.encode_multiturn(tokenizer, long_row["_prompt"] + long_row["_response"])
    expected_source, expected_target = infer_seqlen(len(source), len(target), 64)  # both long: split by proportion
    assert row["input_ids"] == source[:expected_source] + target[:expected_target]
    assert row["labels"] == [IGNORE_INDEX] * expected_source + target[:expected_target]


def test_sft_refuses_pairwise_rows_with_a_reason(llama3):
    template, tokenizer = llama3
    pairwise = canonical_row([msg(USER, "Q")], [msg(ASSISTANT, "good"), msg(ASSISTANT, "bad")])
    row = encode_supervised(template, tokenizer, pairwise, EncodeSettings(cutoff_len=64))
    assert row["input_ids"] == [] and "sft needs a conversation ending in exactly one answer" in row["_drop_reason"]
    assert "1 prompt message(s) and 2 answer(s)" in row["_drop_reason"]


def test_pairwise_columns_share_the_prompt(llama3):
    template, tokenizer = llama3
    pairwise = canonical_row([msg(USER, "2+2?")], [msg(ASSISTANT, "4"), msg(ASSISTANT, "5")])
    row = encode_pairwise(template, tokenizer, pairwise, EncodeSettings(cutoff_len=1024))
    prompt, _ = template.encode_oneturn(tokenizer, [msg(USER, "2+2?"), msg(ASSISTANT, "4")])
    assert row["chosen_input_ids"] == prompt + _ids(tokenizer, "4<|eot_id|>")
    assert row["rejected_input_ids"] == prompt + _ids(tokenizer, "5<|eot_id|>")
    assert row["chosen_labels"] == [IGNORE_INDEX] * len(prompt) + _ids(tokenizer, "4<|eot_id|>")
    assert row["rejected_attention_mask"] == [1] * len(row["rejected_input_ids"])


def test_feedback_uses_the_labelled_answer_and_a_kl_answer(llama3):
    template, tokenizer = llama3
    undesired = canonical_row([msg(USER, "Who are you?")], [msg(ASSISTANT, ""), msg(ASSISTANT, "I am SmolLM.")])
    undesired["_kl_response"] = [msg(ASSISTANT, "Paris."), msg(ASSISTANT, "")]
    row = encode_feedback(template, tokenizer, undesired, EncodeSettings(cutoff_len=1024))
    assert row["kto_tags"] is False
    prompt, _ = template.encode_oneturn(tokenizer, [msg(USER, "Who are you?"), msg(ASSISTANT, "x")])
    assert row["input_ids"] == prompt + _ids(tokenizer, "I am SmolLM.<|eot_id|>")
    assert row["kl_input_ids"] == prompt + _ids(tokenizer, "Paris.<|eot_id|>")
    assert row["kl_labels"][: len(prompt)] == [IGNORE_INDEX] * len(prompt)


def test_unsupervised_keeps_the_prompt_and_the_reference(llama3):
    template, tokenizer = llama3
    row = encode_unsupervised(template, tokenizer, TWO_TURNS, EncodeSettings(cutoff_len=1024))
    assert tokenizer.decode(row["input_ids"]).endswith(
        "Who are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert row["labels"] == _ids(tokenizer, "I am Lumen.<|eot_id|>")


def test_pretrain_ends_documents_with_end_of_text_for_llama3(llama3):
    template, tokenizer = llama3
    row = encode_pretrain(template, tokenizer, canonical_row([msg(USER, "Some text.")], []), EncodeSettings(16))
    ids = row["input_ids"]
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == "Some text."


def test_rows_the_converter_refused_stay_refused(llama3):
    template, tokenizer = llama3
    refused = canonical_row([], [], drop_reason="message 1 has role `human` where gpt must come")
    row = encode_row("supervised", template, tokenizer, refused, EncodeSettings(64))
    assert row["_drop_reason"] == "message 1 has role `human` where gpt must come"


@pytest.mark.parametrize(
    ("stage", "predict", "kind"),
    [
        ("pt", False, "pretrain"),
        ("sft", False, "supervised"),
        ("sft", True, "unsupervised"),
        ("rm", False, "pairwise"),
        ("dpo", False, "pairwise"),
        ("kto", False, "feedback"),
        ("ppo", False, "unsupervised"),
    ],
)
def test_processor_kind_per_stage(stage, predict, kind):
    assert processor_kind(stage, predict) == kind
