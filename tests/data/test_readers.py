"""Reading rows from every supported file type, and errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lf_ray.data.readers import read_file, read_rows
from lf_ray.data.registry import parse_entry
from lf_ray.errors import DataError

ROWS = [{"instruction": "Add 2 and 3.", "output": "5"}, {"instruction": "Name a colour.", "output": "Red"}]


def test_json_array(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    assert read_file(path) == ROWS


def test_json_lines_with_jsonl_and_json_suffix(tmp_path):
    text = "\n".join(json.dumps(row) for row in ROWS) + "\n\n"
    for name in ("rows.jsonl", "rows.json"):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert read_file(tmp_path / name) == ROWS


def test_csv(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('instruction,output,score\nAdd 2 and 3.,5,1\n"Name a colour, any.",Red,2\n', encoding="utf-8")
    assert read_file(path) == [
        {"instruction": "Add 2 and 3.", "output": "5", "score": 1},
        {"instruction": "Name a colour, any.", "output": "Red", "score": 2},
    ]


def test_parquet(tmp_path):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert read_file(path) == ROWS


def test_arrow_ipc_stream_and_file(tmp_path):
    table = pa.Table.from_pylist(ROWS)
    stream, file = tmp_path / "stream.arrow", tmp_path / "file.arrow"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with pa.OSFile(str(file), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert read_file(stream) == ROWS
    assert read_file(file) == ROWS


def test_arrow_written_by_hf_datasets(tmp_path):
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    (arrow,) = (tmp_path / "saved").glob("*.arrow")
    assert read_file(arrow) == ROWS


def test_txt_gives_one_text_row_per_non_blank_line(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text("first line\n\n  \nsecond line\n", encoding="utf-8")
    assert read_file(path) == [{"text": "first line"}, {"text": "second line"}]


def test_folder_reads_every_visible_file_in_name_order(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "b.jsonl").write_text(json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    (folder / "a.json").write_text(json.dumps([ROWS[0]]), encoding="utf-8")
    (folder / ".hidden.json").write_text("not json", encoding="utf-8")
    attr = parse_entry("parts", {"file_name": "parts"})
    assert read_rows(attr, str(tmp_path)) == [ROWS[0], ROWS[1]]


def test_missing_file_names_the_path_and_the_fix(tmp_path):
    attr = parse_entry("mine", {"file_name": "nope.json"})
    with pytest.raises(DataError) as caught:
        read_rows(attr, str(tmp_path))
    message = str(caught.value)
    assert f"dataset `mine`: file {tmp_path / 'nope.json'} does not exist" in message
    assert f"fix `file_name` in dataset_info.json or `dataset_dir` (now `{tmp_path}`)" in message


def test_unknown_file_type_lists_the_known_ones(tmp_path):
    path = tmp_path / "rows.xlsx"
    path.write_bytes(b"")
    with pytest.raises(DataError) as caught:
        read_file(path, "sheet")
    assert str(caught.value) == (
        f"dataset `sheet`: cannot read {path}: unknown file type `.xlsx`; use one of .json, .jsonl, .csv, .parquet, "
        ".arrow, .txt"
    )


def test_malformed_json_line_gives_its_line_number(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: malformed JSON on line 3 (column 9: ")
    assert "'{\"a\": 2,}'" in message
    assert "each line of a JSON-lines file must be one JSON object" in message


def test_malformed_json_array_gives_line_and_column(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2,}\n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"rows\.json: malformed JSON at line 3, column 11: .*; fix that line"):
        read_file(path)


@pytest.mark.parametrize(("text", "found"), [("[1, 2]", "row 0 is int"), ('{"a": 1}\n["x"]\n', "row 1 is list")])
def test_non_object_row_is_rejected(tmp_path, text, found):
    path = tmp_path / ("rows.json" if text.startswith("[") else "rows.jsonl")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=f"{found}, not an object; every row must be a JSON object"):
        read_file(path)


@pytest.mark.parametrize(("name", "kind"), [("bad.parquet", "parquet"), ("bad.arrow", "arrow")])
def test_corrupt_binary_file_is_a_data_error(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(b"not really")
    with pytest.raises(DataError, match=f"{path.name}: cannot read it as {kind}: "):
        read_file(path)


def test_ragged_csv_is_a_data_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv: cannot read it as csv: .*Expected 2 columns, got 3"):
        read_file(path)


def test_hub_dataset_goes_through_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, data_dir=None, split=None):
        calls.append((path, name, data_dir, split))
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    attr = parse_entry("hub", {"hf_hub_url": "org/data", "subset": "en", "folder": "sub", "split": "test"})
    assert read_rows(attr, "unused") == ROWS
    assert calls == [("org/data", "en", "sub", "test")]


def test_unreachable_hub_says_to_download_and_register(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    attr = parse_entry("hub", {"hf_hub_url": "org/data"})
    with pytest.raises(DataError) as caught:
        read_rows(attr, "unused")
    assert str(caught.value) == (
        "dataset `hub`: cannot load `org/data` from the hf_hub hub (no network); download it to a local folder and "
        "register it with `file_name` in dataset_info.json"
    )


def test_rows_keep_nested_values(tmp_path):
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "tools": None}
    path = Path(tmp_path / "chat.json")
    path.write_text(json.dumps([row]), encoding="utf-8")
    assert read_file(path) == [row]
