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
    location = source_location(attr)
    indexes = sample_indexes(len(rows), attr.num_samples, max_samples, seed)
    if indexes is not None:
        rows = [rows[i] for i in indexes]
    canonical = convert_rows(attr, rows, location)
    return canonical, SourceSummary(attr.name, location, rows_read, len(canonical))


def source_location(attr: DatasetAttr) -> str:
    return attr.dataset_name if attr.load_from == "file" else f"{attr.load_from}:{attr.dataset_name}"


def sample_indexes(rows: int, num_samples: int | None, max_samples: int | None, seed: int) -> np.ndarray | None:
    """Which of a source's rows are used, in order (None: all of them, as read).

    `num_samples` (dataset_info.json): every row at least once, then random repeats (seeded, unlike LF);
    `max_samples`: the first rows after that."""
    indexes = None
    if num_samples is not None:
        rng = np.random.default_rng(seed)
        indexes = rng.permutation(rows)[:num_samples]
        extra = num_samples - len(indexes)
        if extra > 0:
            indexes = np.concatenate([indexes, rng.choice(rows, extra)])
    if max_samples is not None:
        indexes = (np.arange(rows) if indexes is None else indexes)[:max_samples]
    return indexes


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


def check_eval_source(data: DataArguments) -> None:
    if data.eval_dataset and data.val_size:
        raise DataError(
            f"val_size {data.val_size} and eval_dataset {data.eval_dataset} are both set: the eval rows would come "
            "from two places; set one of them"
        )


def split_off_eval(
    merged: datasets.Dataset, val_size: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """(train, eval): a `val_size` split exactly as LLaMA-Factory makes it (HF `train_test_split`, same seed)."""
    if not val_size:
        return merged, None
    test_size = int(val_size) if val_size > 1 else val_size
    if test_size >= len(merged):
        raise DataError(f"val_size {val_size} leaves no training rows out of {len(merged)}; lower `val_size`")
    split = merged.train_test_split(test_size=test_size, seed=seed)
    return split["train"], split["test"]


def load_canonical_splits(data: DataArguments, stage: str, seed: int) -> CanonicalSplits:
    """Train rows from `dataset`, eval rows from `eval_dataset` or a `val_size` split of the train rows."""
    check_eval_source(data)
    sources: list[SourceSummary] = []
    train = evaluation = None
    if data.dataset:
        merged, found = load_merged(data.dataset, data, seed)
        sources += found
        train, evaluation = split_off_eval(merged, data.val_size, seed)
    if data.eval_dataset:
        evaluation, found = load_merged(data.eval_dataset, data, seed)
        sources += found
    # `.with_format("arrow")[:]` honours the index mapping that splitting / interleaving leave behind
    tables = [split.with_format("arrow")[:] if split is not None else None for split in (train, evaluation)]
    if stage == "kto":
        tables = [with_kl_responses(table) if table is not None else None for table in tables]
    return CanonicalSplits(train=tables[0], eval=tables[1], sources=sources)
