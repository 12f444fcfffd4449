"""A training worker's stream of its share of a split: which rows, in which order, per epoch and after a resume."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch.utils.data

from lf_ray.train.stream import EpochLoader, ShardStream, SplitFiles, _read_rows

FILE_ROWS = (5, 7, 3)  # 15 rows: two ranks take 8 each, one row seen twice


@pytest.fixture
def split(tmp_path):
    start = 0
    for index, rows in enumerate(FILE_ROWS):
        ids = list(range(start, start + rows))
        table = pa.table({"row": ids, "input_ids": [[i, i + 1] for i in ids]})
        pq.write_table(table, tmp_path / f"part-{index:05d}-of-00003.parquet", row_group_size=2)
        start += rows
    return SplitFiles.read(str(tmp_path))


def _rows(stream) -> list[int]:
    return [row["row"] for row in stream]


def _stream(files, rank=0, world=2, shuffle=True, buffer_rows=4, seed=7):
    return ShardStream(files, rank=rank, world=world, seed=seed, shuffle=shuffle, buffer_rows=buffer_rows)


def test_split_files_count_rows_from_the_footers(split):
    assert split.rows == FILE_ROWS and split.total == 15
    assert [uri.rsplit("/", 1)[1] for uri in split.uris] == [f"part-0000{i}-of-00003.parquet" for i in range(3)]


def test_a_row_range_spans_row_groups(split):
    assert _read_rows(split.uris[1], 1, 6).column("row").to_pylist() == [6, 7, 8, 9, 10]


def test_unshuffled_shares_are_contiguous_and_the_last_wraps_round(split):
    shares = [_rows(_stream(split, rank=rank, shuffle=False)) for rank in (0, 1)]
    assert shares == [list(range(8)), [8, 9, 10, 11, 12, 13, 14, 0]]
    assert len(_stream(split, rank=1)) == 8
    assert [row["input_ids"] for row in _stream(split, shuffle=False)][:2] == [[0, 1], [1, 2]]


def test_each_epoch_shuffles_differently_covers_every_row_and_is_reproducible(split):
    epochs = []
    for epoch in (0, 1):
        shares = []
        for rank in (0, 1):
            stream = _stream(split, rank=rank)
            stream.set_epoch(epoch)
            shares.append(_rows(stream))
        assert sorted(set(shares[0] + shares[1])) == list(range(15)) and len(shares[0] + shares[1]) == 16
        epochs.append(shares)
    assert epochs[0] != epochs[1]
    again = _stream(split, rank=1)
    again.set_epoch(1)
    assert _rows(again) == epochs[1][1]


@pytest.mark.parametrize("skip", [0, 3, 4, 6])  # inside the first window, on a window's edge, inside the second
def test_a_resumed_stream_goes_on_with_the_row_after_the_last_one_trained(split, skip):
    stream = _stream(split, rank=1)
    stream.set_epoch(1)
    whole = _rows(stream)
    stream.resume_at(skip)
    assert _rows(stream) == whole[skip:]
    assert _rows(stream) == whole  # the position applies to one iteration only


def test_the_loader_resumes_at_a_batch_and_dataloader_workers_keep_the_order(split):
    def loader(workers):
        return EpochLoader(_stream(split), batch_size=3, num_workers=workers, collate_fn=lambda rows: rows)

    batches = [[row["row"] for row in batch] for batch in loader(0)]
    assert len(batches) == len(loader(0)) == 3 and sum(map(len, batches)) == 8
    assert [[row["row"] for row in batch] for batch in loader(2)] == batches
    for workers in (0, 2):
        resumed = loader(workers).resume_at_batch(2)
        assert [[row["row"] for row in batch] for batch in resumed] == batches[2:]
        assert [[row["row"] for row in batch] for batch in resumed] == batches  # the next epoch starts at 0


def test_an_iterable_dataset_is_what_torch_sees(split):
    assert isinstance(_stream(split), torch.utils.data.IterableDataset)
    assert _stream(split).head(3)["row"] == [0, 1, 2]


def test_a_trainer_resumed_mid_epoch_trains_on_the_rows_after_its_checkpoint_and_none_before(tmp_path, tiny_llama_path):
    """transformers' Trainer skips the batches a resumed epoch already trained by asking the stream to start at
    its position (`get_resumed_dataloader`): the rows trained before the checkpoint are not trained again."""
    from transformers import AutoModelForCausalLM, TrainingArguments

    from lf_ray.train.worker import stream_worker_shard

    rows = list(range(40))
    table = pa.table({"row": rows, "input_ids": [[5 + i % 50, 6, 7, 8] for i in rows]})
    (tmp_path / "train").mkdir()
    pq.write_table(table, tmp_path / "train" / "part-00000-of-00001.parquet", row_group_size=8)
    files = SplitFiles.read(str(tmp_path / "train"))
    trained: list[list[int]] = []

    def collate(batch):
        trained.append([row["row"] for row in batch])
        ids = torch.tensor([row["input_ids"] for row in batch])
        return {"input_ids": ids, "labels": ids}

    def run(resume: str | None) -> list[list[int]]:
        from transformers import Trainer

        trained.clear()
        args = TrainingArguments(
            output_dir=str(tmp_path / "out"), max_steps=6, save_steps=3, per_device_train_batch_size=2,
            gradient_accumulation_steps=2, use_cpu=True, report_to="none", logging_steps=1, seed=3,
        )  # fmt: skip
        stream = ShardStream(files, rank=0, world=1, seed=3, shuffle=True, buffer_rows=16)
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
        trainer = Trainer(model=model, args=args, train_dataset=stream.head(2), data_collator=collate)
        stream_worker_shard(trainer, stream, None).train(resume_from_checkpoint=resume)
        return list(trained)

    whole = run(None)  # 6 steps x 2 micro-batches of 2 rows: 24 of the epoch's 40 rows, shuffled
    assert len({row for batch in whole for row in batch}) == 24 and whole[0] != [0, 1]
    resumed = run(str(tmp_path / "out" / "checkpoint-3"))
    assert resumed == whole[6:]  # steps 4-6 on exactly the batches the whole run trained them on
    assert not {row for batch in resumed for row in batch} & {row for batch in whole[:6] for row in batch}


STREAM_PEAK = """
import resource, sys
from lf_ray.train.stream import ShardStream, SplitFiles
stream = ShardStream(SplitFiles.read(sys.argv[1]), rank=0, world=2, seed=0, shuffle=True, buffer_rows=2048)
rows = sum(1 for _ in stream)
print(rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_a_workers_memory_does_not_grow_with_the_dataset(tmp_path):
    import subprocess
    import sys

    import numpy as np

    def peak_mib(rows: int) -> tuple[int, int]:
        folder = tmp_path / str(rows)
        folder.mkdir()
        tokens = np.random.default_rng(0).integers(0, 32_000, size=(rows, 128), dtype=np.int32)
        ids = pa.ListArray.from_arrays(np.arange(0, rows * 128 + 1, 128, dtype=np.int32), tokens.ravel())
        for part in range(4):
            share = rows // 4
            table = pa.table({"input_ids": ids.slice(part * share, share), "labels": ids.slice(part * share, share)})
            pq.write_table(table, folder / f"part-{part:05d}-of-00004.parquet", row_group_size=1024)
        out = subprocess.run([sys.executable, "-c", STREAM_PEAK, str(folder)], capture_output=True, text=True)
        seen, peak = map(int, out.stdout.split())
        return seen, peak

    (small_rows, small), (big_rows, big) = peak_mib(10_000), peak_mib(100_000)
    assert (small_rows, big_rows) == (5_000, 50_000)
    # the big share holds 50 MiB of tokens per column; all of it in Python lists would be over 700 MiB
    print(f"stream peak RSS: {small} MiB at 10k rows, {big} MiB at 100k rows")
    assert big < small + 60, (small, big)


def test_a_worker_streams_its_share_with_the_configs_buffer_size(split, tmp_path, monkeypatch):
    import shutil
    import types

    import ray.train

    from lf_ray.config import prepare_config
    from lf_ray.train.worker import _stream as worker_stream

    (tmp_path / "dataset" / "train").mkdir(parents=True)
    for uri in split.uris:
        shutil.copy(uri, tmp_path / "dataset" / "train")
    monkeypatch.setattr(ray.train, "get_context", lambda: types.SimpleNamespace(
        get_world_rank=lambda: 1, get_world_size=lambda: 2
    ))  # fmt: skip
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "buffer_size=3"])
    args = types.SimpleNamespace(seed=5, data_seed=None, train_sampling_strategy="random")
    stream = worker_stream(cfg, args, str(tmp_path / "dataset"), "train")
    assert (stream.rank, stream.world, stream.seed, stream.buffer_rows, stream.shuffle) == (1, 2, 5, 3, True)
    assert len(_rows(stream)) == 8  # its share of 15 rows on 2 ranks
