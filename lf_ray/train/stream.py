"""A Ray Train worker's share of a tokenized split, streamed from the artifact's Parquet parts.

Each worker reads only its own rows, straight from the artifact (a local folder or a URI), a window at a time,
so its memory does not grow with the dataset. The order is a pure function of (seed, epoch, rank):

- an epoch orders the split's files (shuffled per epoch unless `train_sampling_strategy: sequential`);
- rank r of w takes the r-th contiguous share of that sequence, ceil(rows / w) rows: like PyTorch's
  `DistributedSampler`, the last share wraps round to the start, so every row is seen each epoch and every rank
  takes as many steps (at most w - 1 rows are seen twice);
- the share is cut into windows of `buffer_rows` rows, each shuffled on its own (a local shuffle buffer that
  is a full shuffle when the share fits in one window).

So the length is known up front (epochs, `max_steps` and the LR schedule stay exact), and a resumed run starts
at its data position: it skips whole windows without reading them and goes on with the row after the last
one trained.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch.utils.data

from lf_ray import storage

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

_ROWS_PER_CONVERSION = 256  # rows turned into Python objects at a time


@dataclass(frozen=True)
class SplitFiles:
    """A split's Parquet files in name order and the rows in each (from their footers)."""

    uris: tuple[str, ...]
    rows: tuple[int, ...]

    @classmethod
    def read(cls, location: str) -> SplitFiles:
        names = [f.path for f in storage.list_files(location) if f.path.endswith(".parquet")]
        uris = tuple(storage.join(location, name) for name in names)
        return cls(uris, tuple(_open(uri).metadata.num_rows for uri in uris))

    @property
    def total(self) -> int:
        return sum(self.rows)


class ShardStream(torch.utils.data.IterableDataset):
    """Rank `rank` of `world`'s rows of a split, one epoch per iteration (see the module's docstring)."""

    def __init__(self, files: SplitFiles, *, rank: int, world: int, seed: int, shuffle: bool, buffer_rows: int) -> None:
        self.files, self.rank, self.world = files, rank, world
        self.seed, self.shuffle, self.buffer_rows = seed, shuffle, max(1, buffer_rows)
        self.epoch, self.skip = 0, 0
        self.batch_rows = 1  # rows per batch, so DataLoader worker processes can take turns batch by batch

    def __len__(self) -> int:
        return -(-self.files.total // self.world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, rows: int) -> None:
        """The next iteration starts `rows` rows into the share (a run resumed mid-epoch)."""
        self.skip = rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        skip, self.skip = self.skip, 0
        return self._rows(skip)

    def _rows(self, skip: int) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        position = skip - skip % self.buffer_rows
        for start in range(position, len(self), self.buffer_rows):
            window = self._window(start, min(start + self.buffer_rows, len(self)))
            first = max(0, skip - start)
            for begin in range(first, window.num_rows, _ROWS_PER_CONVERSION):
                stop = min(begin + _ROWS_PER_CONVERSION, window.num_rows)
                for offset, row in enumerate(window.slice(begin, stop - begin).to_pylist()):
                    index = start + begin + offset
                    if worker is None or (index // self.batch_rows) % worker.num_workers == worker.id:
                        yield row

    def head(self, rows: int | None) -> datasets.Dataset:
        """The first rows of the split (None: all of it) as a `datasets.Dataset`: what trainers that insist on one
        are built with, and what a `whole_split` stage trains on."""
        import datasets
        import pyarrow as pa

        if rows is None:
            parts = zip(self.files.uris, self.files.rows, strict=True)
            return datasets.Dataset(pa.concat_tables(_read_rows(uri, 0, count) for uri, count in parts))
        return datasets.Dataset(_read_rows(self.files.uris[0], 0, min(rows, self.files.rows[0])))

    def _window(self, start: int, stop: int) -> pa.Table:
        """Share positions [start, stop) in this epoch's order, shuffled when the stream shuffles."""
        import pyarrow as pa

        runs = self._runs(self.rank * len(self) + start, stop - start)
        window = pa.concat_tables(_read_rows(self.files.uris[index], first, last) for index, first, last in runs)
        if not self.shuffle:
            return window
        generator = np.random.default_rng([self.seed, self.epoch, self.rank, start // self.buffer_rows])
        return window.take(generator.permutation(window.num_rows))

    def _runs(self, begin: int, count: int) -> list[tuple[int, int, int]]:
        """(file, first row, stop row) runs that hold `count` positions of the epoch's sequence from `begin`,
        wrapping round to the start."""
        order = self._file_order()
        offsets = np.concatenate([[0], np.cumsum([self.files.rows[i] for i in order])])
        runs, position = [], begin % self.files.total
        while count > 0:
            slot = int(np.searchsorted(offsets, position, side="right")) - 1
            inside = int(position - offsets[slot])
            take = min(count, self.files.rows[order[slot]] - inside)
            runs.append((order[slot], inside, inside + take))
            count -= take
            position = (position + take) % self.files.total
        return runs

    def _file_order(self) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.files.uris)))
        return [int(i) for i in np.random.default_rng([self.seed, self.epoch]).permutation(len(self.files.uris))]


class EpochLoader(torch.utils.data.DataLoader):
    """A DataLoader over a `ShardStream` that hands the trainer's epoch and resume position to the stream."""

    def __init__(self, stream: ShardStream, **kwargs: Any) -> None:
        super().__init__(stream, **kwargs)
        stream.batch_rows = kwargs.get("batch_size") or 1

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()  # the stream, or its copies in worker processes, took the resume position
        self.dataset.resume_at(0)
        return batches

    def resume_at_batch(self, batches: int) -> EpochLoader:
        self.dataset.resume_at(batches * (self.batch_size or 1))
        return self


def _read_rows(uri: str, start: int, stop: int) -> pa.Table:
    """Rows [start, stop) of one Parquet file, reading only the row groups that hold them."""
    parquet = _open(uri)
    groups, first, seen = [], None, 0
    for index in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if seen + size > start and seen < stop:
            groups.append(index)
            first = seen if first is None else first
        seen += size
    return parquet.read_row_groups(groups).slice(start - first, stop - start)


@functools.lru_cache(maxsize=4)
def _open(uri: str) -> pq.ParquetFile:
    import pyarrow.parquet as pq

    fs, path = storage.filesystem(uri)
    return pq.ParquetFile(fs.open_input_file(path))
