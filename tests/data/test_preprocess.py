"""The preprocess step on a real local Ray: Parquet equal to the pure processors, cached, deterministic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lf_ray.config import prepare_config
from lf_ray.data import preprocess
from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.packing import chunk_pretrain, pack_supervised
from lf_ray.data.preprocess import encode_table, run_preprocess
from lf_ray.data.processors import EncodeSettings
from lf_ray.data.tokenizer_spec import tokenizer_spec
from lf_ray.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_session")


def _config(tmp_path, *overrides: str):
    base = [
        "model_name_or_path=builtin:tiny-llama",
        "stage=sft",
        "do_train=true",
        "dataset_dir=builtin",
        "dataset=identity,alpaca_en_demo",
        "cutoff_len=128",
        "val_size=0.1",
        f"tokenized_path={tmp_path / 'tokenized'}",
    ]
    return prepare_config(None, [*base, *overrides])


def _read(path):
    return pq.read_table(path).to_pylist()


def test_output_equals_the_pure_processors(tmp_path):
    cfg = _config(tmp_path)
    result = run_preprocess(cfg)
    assert not result.reused

    splits = load_canonical_splits(cfg.data, "sft", cfg.training.get("seed", 42))
    tokenizer, template = tokenizer_spec(cfg).load()
    expected = encode_table(splits.train, template, tokenizer, "supervised", EncodeSettings(128)).to_pylist()
    expected = [
        {key: row[key] for key in ("input_ids", "attention_mask", "labels")}
        for row in expected
        if row["_drop_reason"] is None
    ]
    assert _read(Path(result.path) / "train") == expected

    manifest = json.loads((Path(result.path) / "manifest.json").read_text())
    train = manifest["splits"]["train"]
    assert train["rows_in"] == splits.train.num_rows
    assert train["rows_out"] == len(expected)
    assert train["tokens"] == sum(len(row["input_ids"]) for row in expected)
    assert manifest["splits"]["eval"]["rows_out"] == splits.eval.num_rows
    assert manifest["status"] == "complete" and len(manifest["fingerprint"]) == 64
    assert {source["name"] for source in manifest["sources"]} == {"identity", "alpaca_en_demo"}


def test_second_run_reuses_and_overwrite_cache_rebuilds(tmp_path):
    first = run_preprocess(_config(tmp_path))
    again = run_preprocess(_config(tmp_path))
    assert again.reused and again.manifest["fingerprint"] == first.manifest["fingerprint"]
    forced = run_preprocess(_config(tmp_path, "overwrite_cache=true"))
    assert not forced.reused and forced.manifest["created_at"]
    changed = run_preprocess(_config(tmp_path, "cutoff_len=64"))
    assert not changed.reused and changed.manifest["fingerprint"] != first.manifest["fingerprint"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary dirs left behind


def test_one_and_two_actors_and_this_process_write_the_same_files(tmp_path, monkeypatch):
    one = run_preprocess(_config(tmp_path / "one", "preprocessing_batch_size=16", "preprocessing_num_workers=1"))
    two = run_preprocess(_config(tmp_path / "two", "preprocessing_batch_size=16", "preprocessing_num_workers=2"))
    monkeypatch.setattr(preprocess, "one_part_each", lambda parts: True)  # small data's path, many parts
    here = run_preprocess(_config(tmp_path / "here", "preprocessing_batch_size=16"))
    assert (one.manifest["actors"], two.manifest["actors"], here.manifest["actors"]) == (1, 2, 0)
    for split in ("train", "eval"):
        files = sorted(p.name for p in (Path(one.path) / split).iterdir())
        assert files == one.manifest["splits"][split]["files"] == here.manifest["splits"][split]["files"]
        for other in (two, here):
            assert files == sorted(p.name for p in (Path(other.path) / split).iterdir())
            for name in files:
                assert _read(Path(one.path) / split / name) == _read(Path(other.path) / split / name)
        counted = ("rows_in", "rows_out", "tokens", "truncated", "dropped", "drop_reasons")
        pooled, alone = one.manifest["splits"][split], here.manifest["splits"][split]
        assert {key: pooled[key] for key in counted} == {key: alone[key] for key in counted}
    assert len(one.manifest["splits"]["train"]["files"]) > 1  # the split really was cut into parts


def test_a_dataset_of_one_preprocessing_batch_is_tokenized_without_starting_ray(tmp_path):
    """A 100-row `lf-ray preprocess` would spend most of its time starting Ray and one tokenizer actor."""
    script = (
        "import sys, ray\n"
        "from lf_ray.config import prepare_config\n"
        "from lf_ray.data.preprocess import run_preprocess\n"
        "result = run_preprocess(prepare_config(None, sys.argv[1:]))\n"
        "print(result.manifest['actors'], result.manifest['splits']['train']['rows_out'], ray.is_initialized())\n"
    )
    args = ["model_name_or_path=builtin:tiny-llama", "stage=sft", "dataset_dir=builtin", "dataset=identity",
            "cutoff_len=128", f"tokenized_path={tmp_path / 'tokenized'}"]  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    actors, rows, ray_started = done.stdout.split()[-3:]
    assert (actors, ray_started) == ("0", "False") and int(rows) > 0


def _batches(cfg, kind: str, cutoff: int, batch_size: int):
    """LLaMA-Factory's reference: each `preprocessing_batch_size` batch of canonical rows, tokenized alone."""
    splits = load_canonical_splits(cfg.data, cfg.finetuning.stage, 42)
    tokenizer, template = tokenizer_spec(cfg).load()
    for start in range(0, splits.train.num_rows, batch_size):
        batch = encode_table(splits.train.slice(start, batch_size), template, tokenizer, kind, EncodeSettings(cutoff))
        yield tokenizer, [row for row in batch.to_pylist() if row["_drop_reason"] is None]


def test_sft_packing_is_lf_s_batch_by_batch_knapsack_in_rows_of_cutoff_len(tmp_path):
    """LF 0.9.5 with `packing`: `cutoff_len -= 1`, sequences cut to 127 tokens, a greedy knapsack of 127 over
    each preprocessing batch on its own, every packed row padded to 128 (one pad token kept for flash-attn)."""
    cfg = _config(tmp_path, "packing=true", "val_size=0", "preprocessing_batch_size=16")
    result = run_preprocess(cfg)
    expected = []
    for tokenizer, rows in _batches(cfg, "supervised", 127, 16):
        expected += pack_supervised(rows, 127, tokenizer.pad_token_id, neat_packing=False)[0]
    rows = _read(Path(result.path) / "train")
    assert rows == expected and all(len(row["input_ids"]) == 128 for row in rows)
    assert result.manifest["splits"]["train"]["rows_out"] == len(expected)


def test_neat_packing_layout(tmp_path):
    result = run_preprocess(_config(tmp_path, "packing=true", "neat_packing=true", "val_size=0"))
    rows = _read(Path(result.path) / "train")
    assert rows and all(len(row["input_ids"]) == 128 for row in rows)

    first = rows[0]
    segments = [mask for mask in first["attention_mask"] if mask]
    assert segments == sorted(segments) and segments[0] == 1
    starts = [i for i, position in enumerate(first["position_ids"]) if position == 0 and first["attention_mask"][i]]
    assert len(starts) == max(segments)  # every packed sequence restarts its positions
    assert result.manifest["splits"]["train"]["columns"] == ["input_ids", "attention_mask", "position_ids", "labels"]


def test_pretrain_chunks_each_batch_to_cutoff(tmp_path):
    """LF's pt packing: each preprocessing batch's text concatenated and cut into blocks of cutoff_len (pt's
    default packing keeps the whole cutoff_len), the batch's remainder dropped."""
    cfg = _config(tmp_path, "stage=pt", "dataset=c4_demo", "val_size=0", "cutoff_len=64", "preprocessing_batch_size=8")
    result = run_preprocess(cfg)
    expected = []
    for tokenizer, rows in _batches(cfg, "pretrain", 64, 8):
        bos = tokenizer.bos_token_id if getattr(tokenizer, "add_bos_token", False) else None
        expected += [row["input_ids"] for row in chunk_pretrain(rows, 64, bos)]
    rows = _read(Path(result.path) / "train")
    assert [row["input_ids"] for row in rows] == expected and all(len(ids) == 64 for ids in expected)
    assert result.manifest["splits"]["train"]["processor"] == "pretrain"


def test_dpo_and_kto_columns(tmp_path):
    dpo = run_preprocess(_config(tmp_path / "dpo", "stage=dpo", "dataset=dpo_en_demo", "val_size=0"))
    assert dpo.manifest["splits"]["train"]["columns"][0] == "chosen_input_ids"
    kto = run_preprocess(_config(tmp_path / "kto", "stage=kto", "dataset=kto_en_demo", "val_size=0"))
    tags = [row["kto_tags"] for row in _read(Path(kto.path) / "train")]
    assert set(tags) == {True, False}


def test_pairwise_data_for_sft_is_a_clear_error(tmp_path):
    cfg = _config(tmp_path, "dataset=dpo_en_demo", "val_size=0")
    with pytest.raises(DataError, match=r"dataset `dpo_en_demo` is a ranking dataset .* `stage: sft` trains on one"):
        run_preprocess(cfg)
    assert not (tmp_path / "tokenized").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_plain_packing_keeps_every_token_and_counts_no_padding(tmp_path):
    packed = run_preprocess(_config(tmp_path / "packed", "packing=true", "val_size=0"))
    unpacked = run_preprocess(_config(tmp_path / "unpacked", "val_size=0", "cutoff_len=127"))  # LF: packing cuts 1
    packed_rows, unpacked_rows = _read(Path(packed.path) / "train"), _read(Path(unpacked.path) / "train")
    assert all(set(row["attention_mask"]) == {1} for row in packed_rows)  # LF: padding is attended too
    assert (
        packed.manifest["metrics"]["tokens"]
        == unpacked.manifest["metrics"]["tokens"]
        == sum(len(r["input_ids"]) for r in unpacked_rows)
    )
    real_labels = sorted(label for row in packed_rows for label in row["labels"] if label != -100)
    assert real_labels == sorted(label for row in unpacked_rows for label in row["labels"] if label != -100)
