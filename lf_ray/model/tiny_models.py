"""Randomly initialised Llama and Qwen2 models of under a million parameters, for fast tests.

Each is a real `transformers` architecture with the real family's tokenizer layout, so every code path
(templates, masking, LoRA target modules, merge, serve) runs as it would on the full-size model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lf_ray.model.tiny_tokenizer import (
    TINY_LLAMA_TOKENIZER,
    TINY_QWEN_TOKENIZER,
    TinyTokenizerSpec,
    save_tiny_tokenizer,
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of a tiny model; token ids come from its tokenizer."""

    model_type: Literal["llama", "qwen2"]
    tokenizer: TinyTokenizerSpec
    stop_tokens: tuple[str, ...]
    """Tokens that end generation (generation_config.eos_token_id), as the real instruct models list them."""
    tie_word_embeddings: bool
    rope_theta: float
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    seed: int = 0


TINY_LLAMA = TinyModelSpec(
    model_type="llama",
    tokenizer=TINY_LLAMA_TOKENIZER,
    stop_tokens=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
    tie_word_embeddings=False,
    rope_theta=500000.0,
)

TINY_QWEN = TinyModelSpec(
    model_type="qwen2",
    tokenizer=TINY_QWEN_TOKENIZER,
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
    tie_word_embeddings=True,
    rope_theta=1000000.0,
)


def _model_config(spec: TinyModelSpec, vocab_size: int, ids: dict[str, int | None]):
    from transformers import AutoConfig

    extra = {"use_sliding_window": False, "max_window_layers": spec.num_hidden_layers}
    return AutoConfig.for_model(
        spec.model_type,
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        dtype="float32",
        **(extra if spec.model_type == "qwen2" else {}),
    )


def build_tiny_model(spec: TinyModelSpec, out_dir: Path) -> None:
    """Write tokenizer, config, fp32 safetensors weights and generation config of one tiny model."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    tokenizer = save_tiny_tokenizer(spec.tokenizer, out_dir, spec.max_position_embeddings)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id}
    config = _model_config(spec, len(tokenizer), ids)

    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos"],
        eos_token_id=[tokenizer.convert_tokens_to_ids(t) for t in spec.stop_tokens],
        pad_token_id=ids["pad"],
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)


def build_tiny_llama(out_dir: Path) -> None:
    build_tiny_model(TINY_LLAMA, out_dir)


def build_tiny_qwen(out_dir: Path) -> None:
    build_tiny_model(TINY_QWEN, out_dir)
