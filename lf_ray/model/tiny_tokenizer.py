"""Byte-level BPE tokenizers shaped like Llama 3's and Qwen 2.5's, trained locally on the tiny corpus.

Same pre-tokenizer regex, byte-level alphabet, special tokens placed after the learned vocabulary,
bos handling and real chat template as the originals, at a vocabulary of a couple of thousand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lf_ray.constants import ASSETS_DIR
from lf_ray.model.tiny_corpus import tiny_corpus

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHAT_TEMPLATE_DIR = ASSETS_DIR / "models"

# The split regexes of the real tokenizers: Llama 3 groups digits by three, Qwen 2 splits every digit.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TinyTokenizerSpec:
    """What makes a tiny tokenizer look like its real family."""

    split_regex: str
    special_tokens: tuple[str, ...]
    """Appended after the learned vocabulary, in this order (ids bpe_vocab_size, +1, ...)."""
    chat_template_file: str
    bos_token: str | None
    eos_token: str
    pad_token: str
    nfc: bool = False
    """Qwen normalizes to NFC first; Llama 3 has no normalizer."""
    prepend_bos: bool = False
    """Llama 3's post-processor puts bos in front of every encoded text."""
    ignore_merges: bool = False
    """Llama 3 looks whole words up in the vocabulary before merging; Qwen 2 always merges."""
    bpe_vocab_size: int = 2048
    extra_config: dict[str, object] = field(default_factory=dict)


TINY_LLAMA_TOKENIZER = TinyTokenizerSpec(
    split_regex=LLAMA3_SPLIT,
    special_tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|finetune_right_pad_id|>",
    ),
    chat_template_file="llama3_instruct.jinja",
    bos_token="<|begin_of_text|>",
    eos_token="<|end_of_text|>",
    pad_token="<|finetune_right_pad_id|>",
    prepend_bos=True,
    ignore_merges=True,
)

TINY_QWEN_TOKENIZER = TinyTokenizerSpec(
    split_regex=QWEN2_SPLIT,
    special_tokens=(
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
        "<think>",
        "</think>",
    ),
    chat_template_file="qwen2_5_instruct.jinja",
    bos_token=None,
    eos_token="<|im_end|>",
    pad_token="<|endoftext|>",
    nfc=True,
    extra_config={"errors": "replace"},
)


def train_byte_level_bpe(spec: TinyTokenizerSpec):
    """Train the BPE model on the tiny corpus and add the special tokens; returns a `tokenizers.Tokenizer`."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE(ignore_merges=spec.ignore_merges))
    if spec.nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(spec.split_regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.bpe_vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(tiny_corpus(), trainer=trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.special_tokens])

    byte_level = processors.ByteLevel(trim_offsets=False)
    if spec.prepend_bos:
        bos = (spec.bos_token, tokenizer.token_to_id(spec.bos_token))
        bos_template = processors.TemplateProcessing(
            single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B", special_tokens=[bos]
        )
        tokenizer.post_processor = processors.Sequence([byte_level, bos_template])
    else:
        tokenizer.post_processor = byte_level
    return tokenizer


def build_tiny_tokenizer(spec: TinyTokenizerSpec, model_max_length: int) -> PreTrainedTokenizerBase:
    """The trained BPE wrapped as a transformers fast tokenizer, chat template included."""
    from transformers import PreTrainedTokenizerFast

    chat_template = (CHAT_TEMPLATE_DIR / spec.chat_template_file).read_text(encoding="utf-8")
    return PreTrainedTokenizerFast(
        tokenizer_object=train_byte_level_bpe(spec),
        bos_token=spec.bos_token,
        eos_token=spec.eos_token,
        pad_token=spec.pad_token,
        chat_template=chat_template,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        **spec.extra_config,
    )


def save_tiny_tokenizer(spec: TinyTokenizerSpec, out_dir: Path, model_max_length: int) -> PreTrainedTokenizerBase:
    tokenizer = build_tiny_tokenizer(spec, model_max_length)
    tokenizer.save_pretrained(out_dir)
    return tokenizer
