"""Sources → canonical rows, mixed and split exactly as LLaMA-Factory does with Hugging Face `datasets`."""

from __future__ import annotations

import json
import types
from pathlib import Path

import datasets
import numpy as np
import pytest

from lf_ray.data.loader import CANONICAL_SCHEMA, SourceSummary, load_canonical_splits, load_source, merge_sources
from lf_ray.data.registry import parse_entry
from lf_ray.errors import DataError

SEED = 42


def alpaca_rows(tag: str, count: int) -> list[dict]:
    return [{"instruction": f"{tag}{i}", "output": f"{tag.upper()}{i}"} for i in range(count)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """`a`: 5 rows (json array), `b`: 10 rows (json lines), `c`: 4 rows; plus a kto set and an eval set."""
    (tmp_path / "a.json").write_text(json.dumps(alpaca_rows("a", 5)), encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in alpaca_rows("b", 10)), encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps(alpaca_rows("c", 4)), encoding="utf-8")
    kto = [{"instruction": f"k{i}", "output": f"K{i}", "label": i % 2 == 0} for i in range(3)]
    (tmp_path / "kto.json").write_text(json.dumps(kto), encoding="utf-8")
    info = {
        "a": {"file_name": "a.json"},
        "b": {"file_name": "b.jsonl"},
        "c": {"file_name": "c.json"},
        "kto": {
            "file_name": "kto.json",
            "columns": {"prompt": "instruction", "response": "output", "kto_tag": "label"},
        },
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return tmp_path


def data_args(data_dir: Path, **overrides) -> types.SimpleNamespace:
    fields = dict(
        dataset=["a"],
        eval_dataset=None,
        dataset_dir=str(data_dir),
        mix_strategy="concat",
        interleave_probs=None,
        max_samples=None,
        val_size=0.0,
    )
    return types.SimpleNamespace(**{**fields, **overrides})


def questions(table) -> list[str]:
    return [prompt[-1]["content"] for prompt in table.column("_prompt").to_pylist()]


def ids_dataset(tag: str, count: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"q": [f"{tag}{i}" for i in range(count)]})


# ---- load_source --------------------------------------------------------------------------------------------------


def test_load_source_converts_every_row_and_summarises(data_dir):
    attr = parse_entry("a", {"file_name": "a.json"})
    rows, summary = load_source(attr, str(data_dir), None, SEED)
    assert summary == SourceSummary("a", "a.json", 5, 5)
    assert rows[1] == {
        "_prompt": [{"role": "user", "content": "a1"}],
        "_response": [{"role": "assistant", "content": "A1"}],
        "_system": "",
        "_tools": "",
        "_origin": "a.json row 2",
        "_drop_reason": None,
    }


def test_max_samples_keeps_the_first_rows(data_dir):
    rows, summary = load_source(parse_entry("b", {"file_name": "b.jsonl"}), str(data_dir), 3, SEED)
    assert [row["_prompt"][0]["content"] for row in rows] == ["b0", "b1", "b2"]
    assert summary == SourceSummary("b", "b.jsonl", 10, 3)


def test_num_samples_below_size_is_a_seeded_permutation(data_dir):
    attr = parse_entry("b", {"file_name": "b.jsonl", "num_samples": 4})
    rows, summary = load_source(attr, str(data_dir), None, SEED)
    expected = np.random.default_rng(SEED).permutation(10)[:4]
    assert [row["_prompt"][0]["content"] for row in rows] == [f"b{i}" for i in expected]
    assert summary == SourceSummary("b", "b.jsonl", 10, 4)
    assert load_source(attr, str(data_dir), None, SEED)[0] == rows  # same seed, same rows


def test_num_samples_above_size_takes_every_row_then_repeats(data_dir):
    attr = parse_entry("a", {"file_name": "a.json", "num_samples": 8})
    rows, summary = load_source(attr, str(data_dir), None, SEED)
    rng = np.random.default_rng(SEED)
    expected = [*rng.permutation(5), *rng.choice(5, 3)]
    got = [row["_prompt"][0]["content"] for row in rows]
    assert got == [f"a{i}" for i in expected]
    assert set(got[:5]) == {f"a{i}" for i in range(5)}
    assert summary == SourceSummary("a", "a.json", 5, 8)


def test_max_samples_applies_after_num_samples(data_dir):
    attr = parse_entry("a", {"file_name": "a.json", "num_samples": 8})
    full, _ = load_source(attr, str(data_dir), None, SEED)
    capped, summary = load_source(attr, str(data_dir), 2, SEED)
    assert capped == full[:2]
    assert summary.rows_used == 2


# ---- merge_sources ------------------------------------------------------------------------------------------------


def test_concat_keeps_source_order():
    merged = merge_sources([ids_dataset("a", 2), ids_dataset("b", 3)], "concat", None, SEED)
    assert merged["q"] == ["a0", "a1", "b0", "b1", "b2"]


def test_single_source_is_returned_unchanged():
    part = ids_dataset("a", 3)
    assert merge_sources([part], "interleave_over", [1.0], SEED) is part


@pytest.mark.parametrize(
    ("strategy", "stopping"), [("interleave_under", "first_exhausted"), ("interleave_over", "all_exhausted")]
)
@pytest.mark.parametrize("probs", [None, [0.3, 0.7]])
def test_interleave_matches_hf_datasets(strategy, stopping, probs):
    parts = [ids_dataset("a", 5), ids_dataset("b", 10)]
    expected = datasets.interleave_datasets(parts, probabilities=probs, seed=SEED, stopping_strategy=stopping)
    assert merge_sources(parts, strategy, probs, SEED)["q"] == expected["q"]


def test_unknown_mix_strategy():
    with pytest.raises(
        DataError, match="unknown mix_strategy `shuffle`; use concat, interleave_under or interleave_over"
    ):
        merge_sources([ids_dataset("a", 1), ids_dataset("b", 1)], "shuffle", None, SEED)


# ---- load_canonical_splits ----------------------------------------------------------------------------------------


def test_splits_without_validation(data_dir):
    splits = load_canonical_splits(data_args(data_dir, dataset=["a", "c"]), "sft", SEED)
    assert questions(splits.train) == ["a0", "a1", "a2", "a3", "a4", "c0", "c1", "c2", "c3"]
    assert splits.train.schema.remove_metadata() == CANONICAL_SCHEMA
    assert splits.eval is None
    assert splits.sources == [SourceSummary("a", "a.json", 5, 5), SourceSummary("c", "c.json", 4, 4)]


@pytest.mark.parametrize(
    ("strategy", "stopping"), [("interleave_under", "first_exhausted"), ("interleave_over", "all_exhausted")]
)
def test_mixed_splits_give_the_rows_hf_interleave_gives(data_dir, strategy, stopping):
    args = data_args(data_dir, dataset=["a", "b"], mix_strategy=strategy, interleave_probs=[0.4, 0.6])
    splits = load_canonical_splits(args, "sft", SEED)
    expected = datasets.interleave_datasets(
        [ids_dataset("a", 5), ids_dataset("b", 10)], probabilities=[0.4, 0.6], seed=SEED, stopping_strategy=stopping
    )
    assert questions(splits.train) == expected["q"]


def test_val_size_fraction_matches_hf_train_test_split(data_dir):
    splits = load_canonical_splits(data_args(data_dir, dataset=["b"], val_size=0.2), "sft", SEED)
    expected = ids_dataset("b", 10).train_test_split(test_size=0.2, seed=SEED)
    assert questions(splits.train) == expected["train"]["q"]
    assert questions(splits.eval) == expected["test"]["q"]
    assert (splits.train.num_rows, splits.eval.num_rows) == (8, 2)


def test_val_size_count_matches_hf_train_test_split(data_dir):
    splits = load_canonical_splits(data_args(data_dir, dataset=["b"], val_size=3.0), "sft", SEED)
    expected = ids_dataset("b", 10).train_test_split(test_size=3, seed=SEED)
    assert questions(splits.train) == expected["train"]["q"]
    assert questions(splits.eval) == expected["test"]["q"]
    assert (splits.train.num_rows, splits.eval.num_rows) == (7, 3)
    assert sorted(questions(splits.train) + questions(splits.eval)) == sorted(f"b{i}" for i in range(10))


def test_val_size_that_leaves_no_training_rows(data_dir):
    with pytest.raises(DataError, match=r"val_size 5\.0 leaves no training rows out of 5; lower `val_size`"):
        load_canonical_splits(data_args(data_dir, val_size=5.0), "sft", SEED)


def test_eval_dataset_is_loaded_separately(data_dir):
    splits = load_canonical_splits(data_args(data_dir, dataset=["a"], eval_dataset=["c"]), "sft", SEED)
    assert questions(splits.train) == [f"a{i}" for i in range(5)]
    assert questions(splits.eval) == [f"c{i}" for i in range(4)]
    assert [source.name for source in splits.sources] == ["a", "c"]


def test_eval_dataset_alone(data_dir):
    splits = load_canonical_splits(data_args(data_dir, dataset=None, eval_dataset=["c"]), "sft", SEED)
    assert splits.train is None
    assert questions(splits.eval) == [f"c{i}" for i in range(4)]


def test_val_size_together_with_eval_dataset_is_rejected(data_dir):
    """LF raises "Cannot specify `val_size` if `eval_dataset` is not None"; silently dropping the split loses rows."""
    with pytest.raises(DataError, match="val_size"):
        load_canonical_splits(data_args(data_dir, dataset=["b"], eval_dataset=["c"], val_size=0.2), "sft", SEED)


def test_kto_rows_get_the_previous_rows_answer_as_kl_response(data_dir):
    splits = load_canonical_splits(data_args(data_dir, dataset=["kto"], eval_dataset=["c"]), "kto", SEED)
    empty = {"role": "assistant", "content": ""}
    assert splits.train.column("_response").to_pylist() == [
        [{"role": "assistant", "content": "K0"}, empty],
        [empty, {"role": "assistant", "content": "K1"}],
        [{"role": "assistant", "content": "K2"}, empty],
    ]
    assert splits.train.column("_kl_response").to_pylist() == [
        [{"role": "assistant", "content": "K2"}, empty],
        [{"role": "assistant", "content": "K0"}, empty],
        [empty, {"role": "assistant", "content": "K1"}],
    ]
    assert splits.eval.column("_kl_response").to_pylist()[0] == [{"role": "assistant", "content": "C3"}]


def test_non_kto_stages_have_no_kl_response(data_dir):
    assert "_kl_response" not in load_canonical_splits(data_args(data_dir), "sft", SEED).train.column_names


def test_unknown_dataset_name_suggests_the_closest(data_dir):
    with pytest.raises(DataError, match=r"dataset `kt0` is not in .*; did you mean `kto`\?"):
        load_canonical_splits(data_args(data_dir, dataset=["kt0"]), "sft", SEED)


def test_dropped_rows_travel_with_their_reason(data_dir):
    (data_dir / "chat.json").write_text(
        json.dumps([{"conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]}]),
        encoding="utf-8",
    )
    info = json.loads((data_dir / "dataset_info.json").read_text(encoding="utf-8"))
    info["chat"] = {"file_name": "chat.json", "formatting": "sharegpt"}
    (data_dir / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    table = load_canonical_splits(data_args(data_dir, dataset=["chat"]), "sft", SEED).train
    assert table.column("_drop_reason").to_pylist() == [
        "message 0 has role `gpt` where human or observation must come (turns must alternate)"
    ]
    assert table.column("_origin").to_pylist() == ["chat.json row 1"]
