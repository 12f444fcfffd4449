"""Per-stage processors: one canonical row → token ids and labels, with LLaMA-Factory's column names.

Pure functions (no Ray), called by the preprocess step's Ray Data actors and by tests alike. A row that
cannot be used comes back with `_drop_reason` set; `_truncated` tells whether cutoff_len cut it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lf_ray.constants import IGNORE_INDEX
from lf_ray.data.templates import Template
from lf_ray.stages import STAGES, ProcessorKind

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Row = dict[str, Any]

COLUMNS: dict[ProcessorKind, tuple[str, ...]] = {
    "pretrain": ("input_ids", "attention_mask"),
    "supervised": ("input_ids", "attention_mask", "labels"),
    "unsupervised": ("input_ids", "attention_mask", "labels"),
    "pairwise": (
        "chosen_input_ids",
        "chosen_attention_mask",
        "chosen_labels",
        "rejected_input_ids",
        "rejected_attention_mask",
        "rejected_labels",
    ),
    "feedback": ("input_ids", "attention_mask", "labels", "kl_input_ids", "kl_attention_mask", "kl_labels"),
}


@dataclass(frozen=True)
class EncodeSettings:
    """What the processors read from the data config."""

    cutoff_len: int
    train_on_prompt: bool = False
    mask_history: bool = False


def processor_kind(stage: str, predict: bool = False) -> ProcessorKind:
    """Which processor a stage uses (the stage table's); prediction only needs prompts."""
    kind = STAGES[stage].processor
    return "unsupervised" if predict and kind == "supervised" else kind


def infer_seqlen(source_len: int, target_len: int, cutoff_len: int) -> tuple[int, int]:
    """Split the cutoff budget between prompt and answer the way LLaMA-Factory does."""
    if target_len * 2 < cutoff_len:  # truncate source
        max_target_len = cutoff_len
    elif source_len * 2 < cutoff_len:  # truncate target
        max_target_len = cutoff_len - source_len
    else:  # truncate both
        max_target_len = int(cutoff_len * (target_len / (source_len + target_len)))
    new_target_len = min(max_target_len, target_len)
    new_source_len = min(max(cutoff_len - new_target_len, 0), source_len)
    return new_source_len, new_target_len


def _dropped(kind: ProcessorKind, reason: str) -> Row:
    return {**{column: [] for column in COLUMNS[kind]}, "kto_tags": None, "_drop_reason": reason, "_truncated": False}


def _needs_question_last(row: Row) -> bool:
    return len(row["_prompt"]) % 2 == 1


def encode_supervised(template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, cfg: EncodeSettings) -> Row:
    if not _needs_question_last(row) or len(row["_response"]) != 1:
        return _dropped("supervised", _shape_reason(row, "sft needs a conversation ending in exactly one answer"))
    messages = row["_prompt"] + row["_response"]
    discard = cfg.mask_history and not template.preserve_thinking
    pairs = template.encode_multiturn(tokenizer, messages, row["_system"], row["_tools"], discard)
    full_length = sum(len(source) + len(target) for source, target in pairs)
    eos_id = tokenizer.eos_token_id
    total_length = 1 if template.efficient_eos else 0
    if cfg.mask_history:
        pairs = pairs[::-1]  # the last turn gets the budget first
    input_ids: list[int] = []
    labels: list[int] = []
    for turn, (source_ids, target_ids) in enumerate(pairs):
        if total_length >= cfg.cutoff_len:
            break
        source_len, target_len = infer_seqlen(len(source_ids), len(target_ids), cfg.cutoff_len - total_length)
        source_ids, target_ids = source_ids[:source_len], target_ids[:target_len]
        total_length += source_len + target_len
        if cfg.train_on_prompt:
            source_label = source_ids
        elif template.efficient_eos and turn != 0:
            source_label = [eos_id] + [IGNORE_INDEX] * (source_len - 1)
        else:
            source_label = [IGNORE_INDEX] * source_len
        target_label = [IGNORE_INDEX] * target_len if cfg.mask_history and turn != 0 else target_ids
        if cfg.mask_history:
            input_ids = source_ids + target_ids + input_ids
            labels = source_label + target_label + labels
        else:
            input_ids += source_ids + target_ids
            labels += source_label + target_label
    if template.efficient_eos:
        input_ids += [eos_id]
        labels += [eos_id]
    truncated = len(input_ids) < full_length + (1 if template.efficient_eos else 0)
    return _result(input_ids=input_ids, attention_mask=[1] * len(input_ids), labels=labels, _truncated=truncated)


def _encode_prompt_answer(
    template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, answer: dict[str, str], cutoff_len: int
) -> tuple[list[int], list[int], int, bool]:
    prompt_ids, answer_ids = template.encode_oneturn(
        tokenizer, row["_prompt"] + [answer], row["_system"], row["_tools"]
    )
    if template.efficient_eos:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    source_len, target_len = infer_seqlen(len(prompt_ids), len(answer_ids), cutoff_len)
    truncated = source_len < len(prompt_ids) or target_len < len(answer_ids)
    return prompt_ids[:source_len], answer_ids[:target_len], source_len, truncated


def encode_pairwise(template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, cfg: EncodeSettings) -> Row:
    if not _needs_question_last(row) or len(row["_response"]) < 2:
        return _dropped("pairwise", _shape_reason(row, "rm / dpo need a question with a chosen and a rejected answer"))
    chosen, rejected = row["_response"][0], row["_response"][1]
    prompt_ids, chosen_ids = template.encode_oneturn(
        tokenizer, row["_prompt"] + [chosen], row["_system"], row["_tools"]
    )
    _, rejected_ids = template.encode_oneturn(tokenizer, row["_prompt"] + [rejected], row["_system"], row["_tools"])
    if template.efficient_eos:
        chosen_ids = chosen_ids + [tokenizer.eos_token_id]
        rejected_ids = rejected_ids + [tokenizer.eos_token_id]
    longest = max(len(chosen_ids), len(rejected_ids))
    source_len, target_len = infer_seqlen(len(prompt_ids), longest, cfg.cutoff_len)
    truncated = source_len < len(prompt_ids) or target_len < longest
    prompt_ids, chosen_ids, rejected_ids = prompt_ids[:source_len], chosen_ids[:target_len], rejected_ids[:target_len]
    chosen_input, rejected_input = prompt_ids + chosen_ids, prompt_ids + rejected_ids
    return _result(
        chosen_input_ids=chosen_input,
        chosen_attention_mask=[1] * len(chosen_input),
        chosen_labels=[IGNORE_INDEX] * source_len + chosen_ids,
        rejected_input_ids=rejected_input,
        rejected_attention_mask=[1] * len(rejected_input),
        rejected_labels=[IGNORE_INDEX] * source_len + rejected_ids,
        _truncated=truncated,
    )


def encode_feedback(template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, cfg: EncodeSettings) -> Row:
    """KTO: the desired or undesired answer, plus a mismatched (KL) answer taken from another row."""
    if not _needs_question_last(row) or len(row["_response"]) < 2:
        return _dropped("feedback", _shape_reason(row, "kto needs a question with a labelled answer (kto_tag)"))
    desired = bool(row["_response"][0]["content"])
    answer = row["_response"][0] if desired else row["_response"][1]
    kl_response = row.get("_kl_response") or row["_response"]
    kl_answer = kl_response[0] if kl_response[0]["content"] else kl_response[1]
    prompt_ids, answer_ids, source_len, truncated = _encode_prompt_answer(
        template, tokenizer, row, answer, cfg.cutoff_len
    )
    kl_prompt, kl_ids, kl_source_len, _ = _encode_prompt_answer(template, tokenizer, row, kl_answer, cfg.cutoff_len)
    input_ids, kl_input_ids = prompt_ids + answer_ids, kl_prompt + kl_ids
    return _result(
        input_ids=input_ids,
        attention_mask=[1] * len(input_ids),
        labels=[IGNORE_INDEX] * source_len + answer_ids,
        kl_input_ids=kl_input_ids,
        kl_attention_mask=[1] * len(kl_input_ids),
        kl_labels=[IGNORE_INDEX] * kl_source_len + kl_ids,
        kto_tags=desired,
        _truncated=truncated,
    )


def encode_unsupervised(template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, cfg: EncodeSettings) -> Row:
    """A prompt to generate from; `labels` holds the reference answer (if any) for metrics."""
    if not _needs_question_last(row):
        return _dropped("unsupervised", _shape_reason(row, "prediction needs a conversation ending with a question"))
    answer = row["_response"][0] if len(row["_response"]) == 1 else {"role": "assistant", "content": ""}
    prompt_ids, answer_ids = template.encode_oneturn(
        tokenizer, row["_prompt"] + [answer], row["_system"], row["_tools"]
    )
    if template.efficient_eos:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    source_len, target_len = infer_seqlen(len(prompt_ids), len(answer_ids), cfg.cutoff_len)
    truncated = source_len < len(prompt_ids) or target_len < len(answer_ids)
    input_ids = prompt_ids[:source_len]
    return _result(
        input_ids=input_ids, attention_mask=[1] * len(input_ids), labels=answer_ids[:target_len], _truncated=truncated
    )


def pretrain_text(template: Template, tokenizer: PreTrainedTokenizerBase, row: Row) -> str:
    """A document's text plus end-of-document (llama3's eos is <|eot_id|>, documents end with <|end_of_text|>)."""
    eos = "<|end_of_text|>" if template.name == "llama3" else tokenizer.eos_token
    return row["_prompt"][0]["content"] + eos


def encode_pretrain(template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, cfg: EncodeSettings) -> Row:
    """Whole document ids; packing (the default for pt) concatenates and chunks them afterwards."""
    if not row["_prompt"] or not row["_prompt"][0]["content"]:
        return _dropped("pretrain", _shape_reason(row, "pt needs a text column (map it as `prompt`)"))
    text = pretrain_text(template, tokenizer, row)
    if getattr(tokenizer, "add_bos_token", False) and tokenizer.bos_token:
        text = tokenizer.bos_token + text
    input_ids = tokenizer.encode(text, add_special_tokens=False)
    return _result(input_ids=input_ids, attention_mask=[1] * len(input_ids), _truncated=False)


def _result(**columns: Any) -> Row:
    return {"kto_tags": None, "_drop_reason": None, **columns}


def _shape_reason(row: Row, expectation: str) -> str:
    return row.get("_drop_reason") or (
        f"{expectation}; got {len(row['_prompt'])} prompt message(s) and {len(row['_response'])} answer(s) "
        "(is the dataset's format right for this stage?)"
    )


ENCODERS: dict[ProcessorKind, Callable[[Template, PreTrainedTokenizerBase, Row, EncodeSettings], Row]] = {
    "pretrain": encode_pretrain,
    "supervised": encode_supervised,
    "pairwise": encode_pairwise,
    "feedback": encode_feedback,
    "unsupervised": encode_unsupervised,
}


def encode_row(
    kind: ProcessorKind, template: Template, tokenizer: PreTrainedTokenizerBase, row: Row, cfg: EncodeSettings
) -> Row:
    if row.get("_drop_reason"):  # the converter already refused it
        return _dropped(kind, row["_drop_reason"])
    return ENCODERS[kind](template, tokenizer, row, cfg)
