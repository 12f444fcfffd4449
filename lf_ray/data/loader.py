"""Registered datasets → canonical rows, split into train and eval, mixed the way LLaMA-Factory mixes them.

Reading and converting are cheap and run where this is called (the preprocess driver); mixing and
splitting use Hugging Face `datasets` exactly as LLaMA-Factory does, so the same seed gives the same
rows. Tokenization, the expensive part, is the preprocess step's parallel Ray Data stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lf_ray.data.converters import convert_rows
from lf_ray.data.readers import read_rows
from lf_ray.data.registry import DatasetAttr, get_dataset_attrs
from lf_ray.errors import DataError

if TYPE_CHECKING:
    import datasets

    from lf_ray.config import DataArguments

Row = dict[str, Any]
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
CANONICAL_SCHEMA = pa.schema(
    [
        ("_prompt", _MESSAGES),
        ("_response", _MESSAGES),
        ("_system", pa.string()),
        ("_tools", pa.string()),
        ("_origin", pa.string()),
        ("_drop_reason", pa.string()),
    ]
)
KTO_SCHEMA = CANONICAL_SCHEMA.append(pa.field("_kl_response", _MESSAGES))


@dataclass
class SourceSummary:
    name: str
    location: str
    rows_read: int
    rows_used: int


@dataclass
class CanonicalSplits:
    train: pa.Table | None
    eval: pa.Table | None
    sources: list[SourceSummary] = field(default_factory=list)


def load_source(
    attr: DatasetAttr, dataset_dir: str, max_samples: int | None, seed: int
) -> tuple[list[Row], SourceSummary]:
    rows = read_rows(attr, dataset_dir)
    rows_read = len(rows)
    location = attr.dataset_name if attr.load_from == "file" else f"{attr.load_from}:{attr.dataset_name}"
    if attr.num_samples is not None:  # every row at least once, then random repeats (seeded, unlike LF)
        rng = np.random.default_rng(seed)
        indexes = rng.permutation(len(rows))[: attr.num_samples]
        extra = attr.num_samples - len(indexes)
        if extra > 0:
            indexes = np.concatenate([indexes, rng.choice(len(rows), extra)])
        rows = [rows[i] for i in indexes]
    if max_samples is not None:
        rows = rows[:max_samples]
    canonical = convert_rows(attr, rows, location)
    return canonical, SourceSummary(attr.name, location, rows_read, len(canonical))


def _to_dataset(rows: list[Row]) -> datasets.Dataset:
    import datasets

    return datasets.Dataset(pa.Table.from_pylist(rows, schema=CANONICAL_SCHEMA))


def merge_sources(
    parts: list[datasets.Dataset], strategy: str, probs: list[float] | None, seed: int
) -> datasets.Dataset:
    import datasets

    if len(parts) == 1:
        return parts[0]
    if strategy == "concat":
        return datasets.concatenate_datasets(parts)
    if strategy in ("interleave_under", "interleave_over"):
        stopping = "first_exhausted" if strategy == "interleave_under" else "all_exhausted"
        return datasets.interleave_datasets(parts, probabilities=probs, seed=seed, stopping_strategy=stopping)
    raise DataError(f"unknown mix_strategy `{strategy}`; use concat, interleave_under or interleave_over")


def load_merged(names: list[str], data: DataArguments, seed: int) -> tuple[datasets.Dataset, list[SourceSummary]]:
    parts, summaries = [], []
    for attr in get_dataset_attrs(names, data.dataset_dir):
        rows, summary = load_source(attr, data.dataset_dir, data.max_samples, seed)
        parts.append(_to_dataset(rows))
        summaries.append(summary)
    return merge_sources(parts, data.mix_strategy, data.interleave_probs, seed), summaries


def with_kl_responses(table: pa.Table) -> pa.Table:
    """KTO's KL term pairs each prompt with another row's answer: row i takes row i-1's (row 0 the last's)."""
    responses = table.column("_response").to_pylist()
    shifted = responses[-1:] + responses[:-1]
    return table.append_column(pa.field("_kl_response", _MESSAGES), pa.array(shifted, type=_MESSAGES))


def load_canonical_splits(data: DataArguments, stage: str, seed: int) -> CanonicalSplits:
    """Train rows from `dataset`, eval rows from `eval_dataset` or a `val_size` split of the train rows."""
    if data.eval_dataset and data.val_size:
        raise DataError(
            f"val_size {data.val_size} and eval_dataset {data.eval_dataset} are both set: the eval rows would come "
            "from two places; set one of them"
        )
    sources: list[SourceSummary] = []
    train = evaluation = None
    if data.dataset:
        merged, found = load_merged(data.dataset, data, seed)
        sources += found
        if data.val_size:
            test_size = int(data.val_size) if data.val_size > 1 else data.val_size
            if test_size >= len(merged):
                raise DataError(
                    f"val_size {data.val_size} leaves no training rows out of {len(merged)}; lower `val_size`"
                )
            split = merged.train_test_split(test_size=test_size, seed=seed)
            merged, evaluation = split["train"], split["test"]
        train = merged
    if data.eval_dataset:
        evaluation, found = load_merged(data.eval_dataset, data, seed)
        sources += found
    # `.with_format("arrow")[:]` honours the index mapping that splitting / interleaving leave behind
    tables = [split.with_format("arrow")[:] if split is not None else None for split in (train, evaluation)]
    if stage == "kto":
        tables = [with_kl_responses(table) if table is not None else None for table in tables]
    return CanonicalSplits(train=tables[0], eval=tables[1], sources=sources)
