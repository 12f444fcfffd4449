"""Big datasets read by Ray tasks and placed by Ray Data give the rows the driver's loader gives, in its order:
every mix, sampling and split of LLaMA-Factory, KTO's KL pairing across parts, and the same artifact files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lf_ray.config import prepare_config
from lf_ray.data.distributed import SPLITS, gather_parts, load_placed_splits, rows_of_part
from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.preprocess import run_preprocess
from lf_ray.errors import DataError
from tests.data.test_loader import alpaca_rows, data_args

pytestmark = pytest.mark.usefixtures("ray_session")
SEED = 42


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """`a`: 5 rows; `b`: 23 rows over three JSON-lines files in a folder; `s`: 4 rows sampled to 9; `kto`: 11."""
    (tmp_path / "a.json").write_text(json.dumps(alpaca_rows("a", 5)))
    (tmp_path / "b").mkdir()
    rows = alpaca_rows("b", 23)
    for index, chunk in enumerate((rows[:10], rows[10:11], rows[11:])):
        (tmp_path / "b" / f"{index}.jsonl").write_text("\n".join(json.dumps(r) for r in chunk))
    (tmp_path / "s.json").write_text(json.dumps(alpaca_rows("s", 4)))
    kto = [{"instruction": f"k{i}", "output": f"K{i}", "label": i % 3 != 0} for i in range(11)]
    (tmp_path / "kto.json").write_text(json.dumps(kto))
    info = {
        "a": {"file_name": "a.json"},
        "b": {"file_name": "b"},
        "s": {"file_name": "s.json", "num_samples": 9},
        "kto": {
            "file_name": "kto.json",
            "columns": {"prompt": "instruction", "response": "output", "kto_tag": "label"},
        },
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    return tmp_path


def placed_tables(args, stage: str) -> tuple[dict[str, list[dict]], object]:
    """Every split of `load_placed_splits`, gathered back in order (parts of 4 rows, so rows cross parts)."""
    placed = load_placed_splits(args, stage, SEED, lambda rows: 4)
    out: dict[str, list[dict]] = {}
    for part in sorted(gather_parts(placed, kto=stage == "kto").iter_rows(), key=lambda p: (p["_split"], p["_part"])):
        for row in rows_of_part(pa.table({"_rows": pa.array([part["_rows"]], pa.large_binary())})).to_pylist():
            row.pop("_origin")  # the driver names the row by its place after sampling, Ray tasks by file and line
            out.setdefault(SPLITS[part["_split"]], []).append(row)
    return out, placed


def canonical(table) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "_origin"} for row in table.to_pylist()]


@pytest.mark.parametrize(
    ("stage", "overrides"),
    [
        ("sft", {"dataset": ["a", "b"]}),
        ("sft", {"dataset": ["a", "b", "s"], "val_size": 0.2}),
        ("sft", {"dataset": ["b", "a"], "mix_strategy": "interleave_under", "interleave_probs": [0.7, 0.3]}),
        ("sft", {"dataset": ["a", "b"], "mix_strategy": "interleave_over", "max_samples": 7, "val_size": 3}),
        ("sft", {"dataset": ["s"], "eval_dataset": ["a", "b"]}),
        ("kto", {"dataset": ["kto"], "val_size": 3}),
    ],
)
def test_placed_rows_are_the_driver_loaders_rows_in_its_order(data_dir, stage, overrides):
    args = data_args(data_dir, **overrides)
    expected = load_canonical_splits(args, stage, SEED)
    found, placed = placed_tables(args, stage)
    for name, table in (("train", expected.train), ("eval", expected.eval)):
        if table is None:
            assert name not in found
            continue
        assert found[name] == canonical(table) and placed.sizes[name] == table.num_rows
    assert [s.rows_used for s in placed.sources] == [s.rows_used for s in expected.sources]


def test_a_malformed_line_read_by_a_task_names_file_and_line(data_dir):
    (data_dir / "b" / "1.jsonl").write_text('{"instruction": "x", "output": "y"}\n{"instruction": oops}\n')
    with pytest.raises(DataError, match=r"b/1\.jsonl: malformed JSON on line 2") as caught:
        load_placed_splits(data_args(data_dir, dataset=["a", "b"]), "sft", SEED, lambda rows: 4)
    assert "Traceback" not in str(caught.value) and "RayTaskError" not in str(caught.value)


def _config(tmp_path, tag: str, *overrides: str):
    return prepare_config(
        None,
        [
            "model_name_or_path=builtin:tiny-llama",
            "do_train=true",
            "dataset_dir=builtin",
            "cutoff_len=96",
            "preprocessing_batch_size=16",
            f"tokenized_path={tmp_path / tag}",
            *overrides,
        ],
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ("stage=sft", "dataset=identity,alpaca_en_demo", "val_size=0.1", "packing=true"),
        ("stage=kto", "dataset=kto_en_demo", "val_size=5"),
    ],
    ids=["sft-packing", "kto"],
)
def test_a_distributed_read_writes_the_same_artifact(tmp_path, overrides):
    driver = run_preprocess(_config(tmp_path, "driver", *overrides), distributed=False)
    spread = run_preprocess(_config(tmp_path, "spread", *overrides), distributed=True)
    assert (driver.manifest["read"], spread.manifest["read"]) == ("driver", "distributed")
    for split in ("train", "eval"):
        files = driver.manifest["splits"][split]["files"]
        assert files == spread.manifest["splits"][split]["files"] and len(files) >= 1
        for name in files:
            assert pq.read_table(Path(spread.path) / split / name) == pq.read_table(Path(driver.path) / split / name)
    for key in ("rows_in", "rows_out", "tokens", "truncated", "dropped"):
        assert spread.manifest["metrics"][key] == driver.manifest["metrics"][key]


def test_streaming_reads_the_sources_with_ray_tasks_whatever_their_size(tmp_path):
    config = _config(tmp_path, "stream", "stage=sft", "dataset=identity", "streaming=true", "max_steps=5")
    assert run_preprocess(config).manifest["read"] == "distributed"
