"""Tokens a config adds to the tokenizer (`add_tokens`, `add_special_tokens`, `new_special_tokens_config`), and
the embedding rows they get, as LLaMA-Factory's `patch_tokenizer` + `resize_embedding_layer` do:

- the tokens are added to the tokenizer before the template fixes its eos / pad / stop words, so every step
  (preprocess, train, eval, export, serve) sees the same ids;
- the embeddings grow to the tokenizer (padded to a multiple of 64) with the existing rows kept exactly, and the
  rows of the new tokens are set by `init_special_tokens`: `noise_init` (the mean of the existing rows plus
  Gaussian noise of std 1/sqrt(hidden size)), `desc_init` (the mean embedding of the token's description from
  `new_special_tokens_config`), `desc_init_w_noise` (that plus the noise). The noise is drawn from a generator
  seeded with the training seed, so every rank of a worker group starts from the same rows.
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from lf_ray.errors import ConfigError, StorageError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)

EMBEDDING_MULTIPLE = 64
"""Resized embedding tables are padded to a multiple of this (as LLaMA-Factory does): faster matmuls on GPUs."""


@dataclass(frozen=True)
class NewTokens:
    """The config's new tokens (plain data: it travels to Ray workers inside a `TokenizerSpec`)."""

    plain: tuple[str, ...] = ()
    special: tuple[str, ...] = ()
    descriptions: tuple[tuple[str, str], ...] = ()  # (token, description), from new_special_tokens_config
    init: str = "noise_init"

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.plain, *self.special)


def special_token_descriptions(path: str) -> dict[str, str]:
    """`new_special_tokens_config`: a YAML mapping of each new special token to its description."""
    return dict(_read_descriptions(path))


@cache
def _read_descriptions(path: str) -> tuple[tuple[str, str], ...]:
    import yaml

    from lf_ray import storage

    fix = "Fix: point `new_special_tokens_config` at a YAML file like `<|svg_start|>: Marks the start of an SVG`"
    try:
        loaded = yaml.safe_load(storage.read_text(path))
    except (OSError, yaml.YAMLError, StorageError) as err:
        raise ConfigError(f"`new_special_tokens_config` {path} cannot be read: {err}. {fix}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"`new_special_tokens_config` {path} holds {type(loaded).__name__}, not a mapping. {fix}")
    bad = [token for token, text in loaded.items() if not isinstance(token, str) or not isinstance(text, str)]
    if bad:
        raise ConfigError(f"`new_special_tokens_config` {path}: the description of {bad[0]!r} is not text. {fix}")
    return tuple(loaded.items())


def new_tokens(cfg: LfRayConfig) -> NewTokens:
    """The tokens `cfg` adds. As in LLaMA-Factory, `new_special_tokens_config` replaces `add_special_tokens`."""
    model = cfg.model
    descriptions = _read_descriptions(model.new_special_tokens_config) if model.new_special_tokens_config else ()
    special = tuple(token for token, _ in descriptions) or tuple(model.add_special_tokens or ())
    return NewTokens(tuple(model.add_tokens or ()), special, descriptions, model.init_special_tokens)


def add_new_tokens(tokenizer: PreTrainedTokenizerBase, tokens: NewTokens) -> int:
    """Add the tokens the tokenizer lacks; returns how many it gained."""
    added = 0
    if tokens.plain:
        added += tokenizer.add_tokens(list(tokens.plain), special_tokens=False)
    if tokens.special:
        added += tokenizer.add_tokens(list(tokens.special), special_tokens=True)
    if added:
        logger.info("Added %d token(s) to the tokenizer: %s", added, ", ".join(tokens.all))
    return added


def resize_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tokens: NewTokens, seed: int) -> None:
    """Grow the embeddings to the tokenizer and initialise the new tokens' rows (see the module docstring)."""
    import torch

    current = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > current:
        if getattr(model, "quantization_method", None) or getattr(model, "is_quantized", False):
            raise ConfigError("the embeddings of a quantized model cannot be resized; remove `quantization_bit`")
        # mean_resizing=False keeps the new rows out of transformers' own initialisation: ours follows.
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=EMBEDDING_MULTIPLE, mean_resizing=False)
    size = model.get_input_embeddings().weight.shape[0]
    rows = _new_rows(tokenizer, tokens.all, size) or list(range(current, size))
    if not rows:
        return
    logger.info("Embeddings: %d -> %d rows; %s for %d new token row(s).", current, size, tokens.init, len(rows))
    generator = torch.Generator().manual_seed(seed)
    descriptions = dict(tokens.descriptions) if tokens.init != "noise_init" else {}
    tables = [model.get_input_embeddings().weight]
    if model.get_output_embeddings() is not None and not model.config.get_text_config().tie_word_embeddings:
        tables.append(model.get_output_embeddings().weight)
    with torch.no_grad(), _gathered(tables):
        for table in tables:
            _initialise_rows(table, current, rows, tokenizer, descriptions, tokens.init != "desc_init", generator)


def _gathered(params: list[torch.Tensor]) -> AbstractContextManager:
    """Under DeepSpeed ZeRO-3 the tables are partitioned across ranks: gather them, and write from rank 0."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def _new_rows(tokenizer: PreTrainedTokenizerBase, tokens: tuple[str, ...], size: int) -> list[int]:
    ids = {tokenizer.convert_tokens_to_ids(token) for token in tokens}
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id and 0 <= i < size)


def _initialise_rows(
    table: torch.Tensor,
    old_size: int,
    rows: list[int],
    tokenizer: PreTrainedTokenizerBase,
    descriptions: dict[str, str],
    noise: bool,
    generator: torch.Generator,
) -> None:
    """Each new row: the mean of its description's existing rows (or of all existing rows), plus noise. Existing
    rows are those of the table before it grew (the padding rows hold transformers' random init), less the new."""
    import torch

    existing = torch.zeros(table.shape[0], dtype=torch.bool, device=table.device)
    existing[:old_size] = True
    existing[rows] = False
    mean = table[existing].float().mean(dim=0)
    new = set(rows)
    for row in rows:
        base = mean
        description = descriptions.get(tokenizer.convert_ids_to_tokens(row))
        if description is not None:
            ids = [i for i in tokenizer.encode(description, add_special_tokens=False) if i not in new]
            base = table[ids].float().mean(dim=0) if ids else mean
        if noise:
            std = 1.0 / math.sqrt(table.shape[1])
            base = base + torch.randn(table.shape[1], generator=generator).to(table.device) * std
        table[row] = base.to(table.dtype)
