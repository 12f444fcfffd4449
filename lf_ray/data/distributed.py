"""Big datasets: the canonical splits of `loader.py`, row for row, but read and placed by Ray without the driver
holding a row.

`preprocess` reads datasets smaller than DISTRIBUTED_BYTES in the driver (`loader.load_canonical_splits`) and
bigger ones here, in three steps:

1. **Read**: one Ray task per file reads and converts its rows to canonical Arrow rows, tagged with where they
   came from (`_src`, `_file`, `_line`); the rows stay in the object store, the driver learns each file's count.
2. **Order**: the driver runs `loader`'s own sampling, mixing and `val_size` split over index-only stand-ins of
   the sources (two integers a row), so the order is exactly Hugging Face `datasets`' (LLaMA-Factory's) for the
   same seed, without the rows.
3. **Place**: a Ray Data map gives every row its split and position(s) (a row sampled twice goes twice, a row
   left out goes nowhere) and the part of the artifact it belongs to; a `groupby` gathers each part's rows,
   sorted by position, into one row (`gather_parts`, materialized), and the tokenizer actors
   (`preprocess.ProcessParts`) tokenize, pack and write part after part. KTO's KL pairing (row i takes row
   i-1's answer) sends each row's answer to its neighbour's part too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lf_ray import storage
from lf_ray.data.converters import convert_rows
from lf_ray.data.loader import (
    CANONICAL_SCHEMA,
    SourceSummary,
    check_eval_source,
    merge_sources,
    sample_indexes,
    source_location,
    split_off_eval,
)
from lf_ray.data.readers import read_file, source_files
from lf_ray.data.registry import DatasetAttr, get_dataset_attrs
from lf_ray.errors import DataError

if TYPE_CHECKING:
    import datasets
    import ray.data

    from lf_ray.config import DataArguments

DISTRIBUTED_BYTES = 64 << 20  # source files from this size on are read by Ray tasks, not the driver
SPLITS = ("train", "eval")
_TAGS = ("_src", "_file", "_line")


def source_bytes(data: DataArguments) -> int | None:
    """The size of every file the config reads, or None when a dataset is not made of files (a hub dataset)."""
    total = 0
    for attr in get_dataset_attrs([*(data.dataset or []), *(data.eval_dataset or [])], data.dataset_dir):
        if attr.load_from != "file":
            return None
        total += sum(size for _, size in source_files(attr, data.dataset_dir))
    return total


@dataclass
class Source:
    attr: DatasetAttr
    counts: list[int]  # rows per file

    @property
    def rows(self) -> int:
        return sum(self.counts)


@dataclass
class PlacedSplits:
    """The canonical rows, still in the object store, and where each one goes: `rows` carries `_split` (an index
    into SPLITS), `_pos` (its row number in the split), `_part` and, for KTO, `_donor` rows."""

    rows: ray.data.Dataset
    sizes: dict[str, int]  # rows per split
    part_rows: dict[str, int]  # rows per part, per split
    sources: list[SourceSummary] = field(default_factory=list)


def read_file_rows(attr: DatasetAttr, file: str, src: int, file_index: int) -> pa.Table:
    """One file's rows, converted to canonical rows (a Ray task's work); errors name the file and row."""
    rows = read_file(storage.localize(file), attr.name)
    canonical = convert_rows(attr, rows, file) if rows else []  # an empty file among many is fine; checked later
    table = pa.Table.from_pylist(canonical, schema=CANONICAL_SCHEMA)
    tags = {"_src": pa.array([src] * len(rows), pa.int32()), "_file": pa.array([file_index] * len(rows), pa.int32())}
    tags["_line"] = pa.array(np.arange(len(rows)), pa.int64())
    for name, column in tags.items():
        table = table.append_column(name, column)
    return table


def read_sources(data: DataArguments) -> tuple[list[Source], list[Any]]:
    """Start one read task per file of every source (train sources first, then eval); wait for the counts only."""
    import ray

    read = ray.remote(num_returns=2)(_read_and_count)
    sources, tables, counts = [], [], []
    names = [*(data.dataset or []), *(data.eval_dataset or [])]
    for src, attr in enumerate(get_dataset_attrs(names, data.dataset_dir)):
        files = [path for path, _ in source_files(attr, data.dataset_dir)]
        refs = [read.remote(attr, file, src, index) for index, file in enumerate(files)]
        tables += [table for table, _ in refs]
        counts.append([count for _, count in refs])
        sources.append(Source(attr, []))
    with data_errors():
        for source, count_refs in zip(sources, counts, strict=True):
            source.counts = ray.get(count_refs)
            if not source.rows:
                raise DataError(f"dataset `{source.attr.name}` ({source_location(source.attr)}) has no rows; check it")
    return sources, tables


def _read_and_count(attr: DatasetAttr, file: str, src: int, file_index: int) -> tuple[pa.Table, int]:
    table = read_file_rows(attr, file, src, file_index)
    return table, table.num_rows


def order_splits(sources: list[Source], data: DataArguments, seed: int) -> dict[str, np.ndarray]:
    """Each split as an (n, 2) array of (source, row) in LLaMA-Factory's order, from index-only stand-ins."""
    check_eval_source(data)
    train_count = len(data.dataset or [])

    def merged(group: list[tuple[int, Source]]) -> datasets.Dataset:
        parts = [_stand_in(src, source, data.max_samples, seed) for src, source in group]
        return merge_sources(parts, data.mix_strategy, data.interleave_probs, seed)

    numbered = list(enumerate(sources))
    orders: dict[str, Any] = {}
    if data.dataset:
        orders["train"], orders["eval"] = split_off_eval(merged(numbered[:train_count]), data.val_size, seed)
    if data.eval_dataset:
        orders["eval"] = merged(numbered[train_count:])
    return {
        name: np.stack([table.column("_src").to_numpy(), table.column("_row").to_numpy()], axis=1)
        for name, split in orders.items()
        if split is not None
        for table in [split.with_format("arrow")[:]]
    }


def _stand_in(src: int, source: Source, max_samples: int | None, seed: int) -> datasets.Dataset:
    import datasets

    rows = _sampled(source, max_samples, seed)
    return datasets.Dataset(pa.table({"_src": pa.array(np.full(len(rows), src), pa.int32()), "_row": rows}))


def _sampled(source: Source, max_samples: int | None, seed: int) -> np.ndarray:
    indexes = sample_indexes(source.rows, source.attr.num_samples, max_samples, seed)
    return np.arange(source.rows) if indexes is None else indexes


@dataclass(frozen=True)
class Placement:
    """For each (split, source): the source rows that split uses, sorted, and the position each one takes."""

    file_offsets: dict[int, np.ndarray]  # source → the row number its each file starts at
    rows: dict[tuple[int, int], np.ndarray]
    positions: dict[tuple[int, int], np.ndarray]
    sizes: tuple[int, ...]  # rows per split, in SPLITS order
    part_rows: tuple[int, ...]
    kto: bool


def placement_of(
    orders: dict[str, np.ndarray], sources: list[Source], part_rows: dict[str, int], kto: bool
) -> Placement:
    rows, positions = {}, {}
    for split, name in enumerate(SPLITS):
        order = orders.get(name)
        if order is None:
            continue
        for src in np.unique(order[:, 0]):
            where = np.flatnonzero(order[:, 0] == src)
            used = order[where, 1]
            sort = np.argsort(used, kind="stable")
            rows[(split, int(src))], positions[(split, int(src))] = used[sort], where[sort]
    offsets = {src: np.concatenate([[0], np.cumsum(source.counts)[:-1]]) for src, source in enumerate(sources)}
    sizes = tuple(len(orders[name]) if name in orders else 0 for name in SPLITS)
    return Placement(offsets, rows, positions, sizes, tuple(part_rows.get(name, 1) for name in SPLITS), kto)


def place(batch: pa.Table, placement: Placement) -> pa.Table:
    """Ray Data map: each row once per position it takes in a split (none when it is not used)."""
    src = batch.column("_src").to_numpy()
    line = batch.column("_line").to_numpy()
    file = batch.column("_file").to_numpy()
    placed = []
    for (split, source), used in placement.rows.items():
        mine = np.flatnonzero(src == source)
        if not len(mine):
            continue
        row = placement.file_offsets[source][file[mine]] + line[mine]
        left, right = np.searchsorted(used, row, "left"), np.searchsorted(used, row, "right")
        counts = right - left
        take = np.repeat(mine, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        position = placement.positions[(split, source)][np.repeat(left, counts) + within]
        placed.append(_tagged(batch.take(take), split, position, placement, donor=False))
        if placement.kto:  # the answer row i gives to row i + 1 as its KL response
            following = (position + 1) % placement.sizes[split]
            placed.append(_tagged(batch.take(take), split, following, placement, donor=True))
    if not placed:
        return _tagged(batch.slice(0, 0), 0, np.zeros(0, np.int64), placement, donor=False)
    return pa.concat_tables(placed)


def _tagged(table: pa.Table, split: int, position: np.ndarray, placement: Placement, donor: bool) -> pa.Table:
    table = table.drop(list(_TAGS))
    columns = {
        "_split": pa.array(np.full(len(position), split), pa.int8()),
        "_pos": pa.array(position, pa.int64()),
        "_part": pa.array(position // placement.part_rows[split], pa.int64()),
        "_donor": pa.array(np.full(len(position), donor)),
    }
    for name, column in columns.items():
        table = table.append_column(name, column)
    return table


def assemble_part(group: pa.Table, kto: bool) -> pa.Table:
    """A part's placed rows → its canonical rows in order (with `_kl_response` for KTO)."""
    group = group.sort_by("_pos")
    rows = group.filter(pc.invert(group.column("_donor")))
    if kto:
        donors = group.filter(group.column("_donor"))
        rows = rows.append_column("_kl_response", donors.column("_response"))
    return rows.drop(["_split", "_pos", "_part", "_donor"])


def gather_parts(placed: PlacedSplits, kto: bool) -> ray.data.Dataset:
    """One row per part of the artifact: `_split`, `_part` and the part's canonical rows in order (Arrow IPC
    bytes, so a part never straddles two blocks), materialized in the object store.

    Materialized before the tokenizer actors start: a shuffle still running while an actor pool holds the
    CPUs deadlocks a small cluster (the actors wait for input the shuffle has no CPU to make)."""
    parts = sum(-(-rows // placed.part_rows[name]) for name, rows in placed.sizes.items())
    grouped = placed.rows.groupby(["_split", "_part"], num_partitions=max(1, parts))
    return grouped.map_groups(_gather_part, fn_kwargs={"kto": kto}, batch_format="pyarrow").materialize()


def _gather_part(group: pa.Table, kto: bool) -> pa.Table:
    sink = pa.BufferOutputStream()
    rows = assemble_part(group, kto)
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return pa.table(
        {
            "_split": [group.column("_split")[0].as_py()],
            "_part": [group.column("_part")[0].as_py()],
            "_rows": pa.array([sink.getvalue().to_pybytes()], pa.large_binary()),
        }
    )


def rows_of_part(gathered: pa.Table) -> pa.Table:
    """The canonical rows a `gather_parts` row carries."""
    return pa.ipc.open_stream(gathered.column("_rows")[0].as_buffer()).read_all()


def load_placed_splits(data: DataArguments, stage: str, seed: int, part_size: Callable[[int], int]) -> PlacedSplits:
    """Read every source with Ray tasks and place its rows; `part_size(rows)` sizes a split's parts."""
    import ray
    import ray.data

    sources, tables = read_sources(data)
    orders = order_splits(sources, data, seed)
    sizes = {name: len(order) for name, order in orders.items()}
    part_rows = {name: part_size(rows) for name, rows in sizes.items()}
    placement = ray.put(placement_of(orders, sources, part_rows, kto=stage == "kto"))
    placed = ray.data.from_arrow_refs(tables).map_batches(
        _place_with, fn_kwargs={"placement": placement}, batch_format="pyarrow", batch_size=None
    )
    summaries = [
        SourceSummary(s.attr.name, source_location(s.attr), s.rows, len(_sampled(s, data.max_samples, seed)))
        for s in sources
    ]
    return PlacedSplits(placed, sizes, part_rows, summaries)


def _place_with(batch: pa.Table, placement: Any) -> pa.Table:
    import ray

    return place(batch, ray.get(placement) if isinstance(placement, ray.ObjectRef) else placement)


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """A DataError raised in a Ray task or a Ray Data worker reaches the user as that DataError (its message names
    the file, row and fix), not as Ray's wrapper with a remote traceback."""
    try:
        yield
    except Exception as err:
        cause = _data_error_in(err)
        if cause is None or cause is err:
            raise
        raise DataError(str(cause)) from None


def _data_error_in(err: BaseException | None) -> BaseException | None:
    """The original DataError in Ray's wrappers (`RayTaskError(DataError)` subclasses DataError, but its message is
    the remote traceback: its `cause` is the original)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DataError) and not hasattr(err, "cause"):
            return err
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None
