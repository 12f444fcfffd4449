"""The tokenized demo rows the stage tests train on."""

from __future__ import annotations

import pytest

from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.preprocess import encode_table
from lf_ray.data.processors import EncodeSettings, processor_kind
from lf_ray.data.tokenizer_spec import tokenizer_spec
from tests.train.stage_runs import CUTOFF, stage_config


@pytest.fixture(scope="module")
def encoded():
    """stage → (tokenizer, the first tokenized rows of its demo dataset): tokenized once per module."""
    cache = {}

    def get(stage: str):
        if stage not in cache:
            cfg = stage_config(stage)
            tokenizer, template = tokenizer_spec(cfg).load()
            splits = load_canonical_splits(cfg.data, stage, 42)
            table = encode_table(splits.train, template, tokenizer, processor_kind(stage), EncodeSettings(CUTOFF))
            rows = [row for row in table.to_pylist() if row["_drop_reason"] is None]
            cache[stage] = tokenizer, rows
        return cache[stage]

    return get
