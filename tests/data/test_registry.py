"""dataset_info.json entries → DatasetAttr, with LLaMA-Factory's defaults and its `columns` / `tags` reset rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf_ray.constants import DEMO_DATA_DIR
from lf_ray.data.registry import (
    DatasetAttr,
    get_dataset_attrs,
    load_dataset_info,
    parse_entry,
    resolve_dataset_dir,
)
from lf_ray.errors import DataError

BUILTIN_NAMES = ["identity", "alpaca_en_demo", "dpo_en_demo", "kto_en_demo", "glaive_toolcall_en_demo", "c4_demo"]


def write_info(folder: Path, info: object) -> str:
    (folder / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return str(folder)


def test_resolve_dataset_dir_maps_builtin_to_the_shipped_demo_data(tmp_path, monkeypatch):
    assert resolve_dataset_dir("builtin") == str(DEMO_DATA_DIR)
    assert resolve_dataset_dir(str(tmp_path)) == str(tmp_path)
    assert resolve_dataset_dir("s3://bucket/data") == "s3://bucket/data"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_dataset_dir("~/data") == str(tmp_path / "data")


def test_builtin_registry_has_the_demo_datasets():
    attrs = get_dataset_attrs(BUILTIN_NAMES, "builtin")
    assert [attr.name for attr in attrs] == BUILTIN_NAMES
    assert all(attr.load_from == "file" and attr.dataset_name for attr in attrs)
    by_name = {attr.name: attr for attr in attrs}
    assert by_name["dpo_en_demo"].ranking is True
    assert by_name["kto_en_demo"].kto_tag is not None
    assert by_name["glaive_toolcall_en_demo"].tools is not None


def test_unknown_builtin_name_suggests_the_closest():
    with pytest.raises(
        DataError, match=r"dataset `alpaca_en_dem` is not in .*dataset_info\.json; did you mean `alpaca_en_demo`\?"
    ):
        get_dataset_attrs(["alpaca_en_dem"], "builtin")


def test_unknown_name_lists_the_registered_ones_and_says_how_to_fix(tmp_path):
    folder = write_info(tmp_path, {"mine": {"file_name": "mine.json"}, "yours": {"file_name": "yours.json"}})
    with pytest.raises(DataError) as caught:
        get_dataset_attrs(["zzz"], folder)
    message = str(caught.value)
    assert f"dataset `zzz` is not in {tmp_path / 'dataset_info.json'}" in message
    assert "did you mean" not in message
    assert "(it has: mine, yours)" in message
    assert "add an entry for it or fix the `dataset` key" in message


def test_missing_dataset_info_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DataError) as caught:
        load_dataset_info(str(tmp_path))
    message = str(caught.value)
    assert f"no dataset_info.json in dataset_dir `{tmp_path}`" in message
    assert str(tmp_path / "dataset_info.json") in message
    assert "`dataset_dir: builtin`" in message


def test_invalid_json_in_dataset_info_gives_line_and_column(tmp_path):
    (tmp_path / "dataset_info.json").write_text('{\n  "a": {"file_name": "a.json",}\n}', encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_dataset_info(str(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path / 'dataset_info.json'} is not valid JSON "
        "(line 2, column 31: Expecting property name enclosed in double quotes)"
    )


def test_dataset_info_must_be_an_object(tmp_path):
    folder = write_info(tmp_path, [{"file_name": "a.json"}])
    with pytest.raises(DataError, match="must hold a JSON object mapping dataset names to entries"):
        load_dataset_info(folder)


def test_file_entry_gets_lf_defaults():
    attr = parse_entry("mine", {"file_name": "mine.json"})
    assert attr == DatasetAttr(name="mine", dataset_name="mine.json")
    assert (attr.load_from, attr.formatting, attr.ranking, attr.split) == ("file", "alpaca", False, "train")
    assert attr.column_names() == {"prompt": "instruction", "query": "input", "response": "output"}
    assert attr.explicit_columns == ()


def test_sharegpt_entry_gets_sharegpt_default_tags():
    attr = parse_entry("chat", {"file_name": "chat.json", "formatting": "sharegpt"})
    assert attr.column_names() == {"messages": "conversations"}
    tags = (attr.role_tag, attr.content_tag, attr.user_tag, attr.assistant_tag)
    assert tags == ("from", "value", "human", "gpt")
    assert (attr.observation_tag, attr.function_tag, attr.system_tag) == ("observation", "function_call", "system")


def test_openai_entry_uses_openai_tags():
    attr = parse_entry("oa", {"file_name": "oa.jsonl", "formatting": "openai"})
    assert attr.messages == "messages"
    tags = (attr.role_tag, attr.content_tag, attr.user_tag, attr.assistant_tag, attr.observation_tag)
    assert tags == ("role", "content", "user", "assistant", "tool")
    assert (attr.function_tag, attr.system_tag) == ("function", "system")


@pytest.mark.parametrize(
    ("key", "load_from"),
    [("hf_hub_url", "hf_hub"), ("ms_hub_url", "ms_hub"), ("om_hub_url", "om_hub"), ("script_url", "script")],
)
def test_hub_and_script_sources(key, load_from):
    attr = parse_entry("hub", {key: "org/data", "subset": "en", "split": "validation", "folder": "sub"})
    assert (attr.load_from, attr.dataset_name) == (load_from, "org/data")
    assert (attr.subset, attr.split, attr.folder) == ("en", "validation", "sub")


def test_columns_object_resets_unnamed_columns_to_none():
    """LF rule: naming any column drops every default (query, response, history...) not named."""
    attr = parse_entry("c4", {"file_name": "c4.jsonl", "columns": {"prompt": "text"}})
    assert attr.prompt == "text"
    assert (attr.query, attr.response, attr.history, attr.system) == (None, None, None, None)
    assert attr.column_names() == {"prompt": "text"}
    assert attr.explicit_columns == ("prompt",)


def test_tags_object_resets_unnamed_tags_to_none():
    entry = {
        "file_name": "kto.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "label"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }
    attr = parse_entry("kto", entry)
    assert (attr.role_tag, attr.content_tag, attr.user_tag, attr.assistant_tag) == (
        "role",
        "content",
        "user",
        "assistant",
    )
    assert (attr.observation_tag, attr.function_tag, attr.system_tag) == (None, None, None)
    assert attr.column_names() == {"kto_tag": "label", "messages": "messages"}
    assert attr.explicit_columns == ("messages", "kto_tag")


def test_pairwise_entry_and_num_samples():
    entry = {
        "file_name": "dpo.json",
        "formatting": "sharegpt",
        "ranking": True,
        "num_samples": 7,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    }
    attr = parse_entry("dpo", entry)
    assert (attr.ranking, attr.num_samples) == (True, 7)
    assert attr.column_names() == {"chosen": "chosen", "rejected": "rejected", "messages": "conversations"}


def test_unknown_entry_key_suggests_the_closest(tmp_path):
    folder = write_info(tmp_path, {"mine": {"file_nme": "mine.json"}})
    with pytest.raises(DataError) as caught:
        get_dataset_attrs(["mine"], folder)
    message = str(caught.value)
    assert (
        f"unknown key `file_nme` in dataset_info.json entry `mine` in `{folder}`; did you mean `file_name`?" in message
    )
    assert "allowed: cloud_file_name, columns, file_name, folder, formatting" in message


def test_unknown_column_key_suggests_the_closest():
    with pytest.raises(
        DataError, match=r"unknown key `promt` in dataset_info\.json entry `x` `columns`; did you mean `prompt`\?"
    ):
        parse_entry("x", {"file_name": "x.json", "columns": {"promt": "q"}})


def test_unknown_tag_key_suggests_the_closest():
    with pytest.raises(
        DataError, match=r"unknown key `user` in dataset_info\.json entry `x` `tags`; did you mean `user_tag`\?"
    ):
        parse_entry("x", {"file_name": "x.json", "formatting": "sharegpt", "tags": {"user": "human"}})


def test_entry_without_a_source_says_what_to_add():
    with pytest.raises(DataError, match=r"entry `x` names no data: add `file_name` .* or `hf_hub_url`"):
        parse_entry("x", {"formatting": "alpaca"})


def test_entry_must_be_an_object():
    with pytest.raises(
        DataError, match=r"entry `x` must be an object with `file_name` \(or `hf_hub_url`\), got 'x.json'"
    ):
        parse_entry("x", "x.json")


def test_unknown_formatting_is_rejected():
    with pytest.raises(DataError, match="formatting `chatml` is not one of alpaca, sharegpt, openai"):
        parse_entry("x", {"file_name": "x.json", "formatting": "chatml"})


def test_columns_that_are_not_an_object_are_a_data_error():
    """A list instead of an object is a registry mistake and should say so, not raise AttributeError."""
    with pytest.raises(DataError, match="`columns`"):
        parse_entry("x", {"file_name": "x.json", "columns": ["prompt"]})


def test_a_multimodal_entry_is_refused_not_trained_as_text():
    columns = {"messages": "messages", "images": "images"}
    entry = {"file_name": "mllm.json", "formatting": "sharegpt", "columns": columns}
    with pytest.raises(DataError) as err:
        parse_entry("mllm_demo", entry, "data")
    assert str(err.value).startswith(
        "dataset_info.json entry `mllm_demo` in `data` maps media columns (`images: images`): lf-ray trains text-only"
    )
    assert "Fix: use a text dataset, or remove the media columns from the entry" in str(err.value)
