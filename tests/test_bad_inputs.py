"""A corpus of bad inputs as one table: configs (types, ranges, combinations), datasets (encodings, mixed types,
empty files, NaN, broken JSON, CSV and dataset_info.json), pipeline YAML (cycles, missing references, duplicate
ids) and CLI arguments, each given to the real `lf-ray` entry point in this process.

Each must end with exit status 2, one message that names what is wrong and where (the key, the file, the row, the
step) and how to fix it, no traceback, and nothing written where the command writes its outputs. Two inputs that
look odd but are valid (a UTF-8 byte-order mark, CRLF line ends) must be read as they are. Bad HTTP requests are the
table of `tests/serve/test_serve_http.py` (15 cases, each streamed and not, over real HTTP).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from lf_ray.cli import main

BASE = {
    "model_name_or_path": "builtin:tiny-llama",
    "template": "llama3",
    "stage": "sft",
    "finetuning_type": "lora",
    "dataset_dir": "data",
    "dataset": "good",
    "cutoff_len": 64,
    "output_dir": "out",
    "tokenized_path": "tok",
    "ray_storage_path": "runs",
}
GOOD_ROWS = [{"instruction": f"Say {i}", "input": "", "output": f"{i}"} for i in range(8)]


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    says: tuple[str, ...]
    """Fragments the message must hold (what, where, the fix)."""
    files: dict[str, str | bytes] = field(default_factory=dict)
    """Files to write first, relative to the working folder (`data/...` next to a valid `good` dataset)."""
    info: dict[str, dict] = field(default_factory=dict)
    """Entries added to `data/dataset_info.json`."""
    status: int = 2


def train(*overrides: str, says: tuple[str, ...], **kwargs) -> Case:
    return Case(("train", "c.yaml", "max_steps=1", *overrides), says, **kwargs)


def preprocess(file_name: str, content: str | bytes, says: tuple[str, ...], entry: dict | None = None, **kwargs):
    info = {"bad": {"file_name": file_name, **(entry or {})}}
    return Case(("preprocess", "c.yaml", "dataset=bad"), says, {f"data/{file_name}": content}, info, **kwargs)


def pipeline(steps: list[dict], says: tuple[str, ...]) -> Case:
    raw = {"name": "bad", "storage_path": "runs", "defaults": {k: BASE[k] for k in ("model_name_or_path", "template")}}
    return Case(("run", "p.yaml"), says, {"p.yaml": yaml.safe_dump({**raw, "steps": steps})})


PRE = {"id": "data", "uses": "preprocess", "with": {"dataset_dir": "data", "dataset": "good"}}

CASES: dict[str, Case] = {
    # --- configs: types ---------------------------------------------------------------------------------------
    "float_as_word": train("learning_rate=abc", says=("`learning_rate`", "'abc'", "expected float")),
    "int_as_word": train("max_steps=ten", says=("`max_steps`", "'ten'", "expected int")),
    "int_or_null_as_word": train("max_samples=many", says=("`max_samples`", "'many'")),
    "dict_as_list": train("resources_per_worker=[1,2]", says=("`resources_per_worker`", "expected dict")),
    "choice_unknown": train("finetuning_type=qlora", says=("`finetuning_type`", "'qlora'", "lora, oft, freeze")),
    "stage_unknown": train("stage=xyz", says=("`stage`", "'xyz'", "pt, sft")),
    "scheduler_unknown": train("lr_scheduler_type=zigzag", says=("`lr_scheduler_type`", "'zigzag'", "cosine")),
    "optimizer_unknown": train("optim=sgdx", says=("`optim`", "'sgdx'", "adamw_torch")),
    "strategy_unknown": train("save_strategy=sometimes", says=("`save_strategy`", "'sometimes'", "steps, epoch")),
    "tracker_unknown": train("report_to=nonexistent", says=("`report_to: nonexistent`", "tensorboard")),
    "key_misspelt": train("learnig_rate=1e-4", says=("unknown key `learnig_rate`", "did you mean `learning_rate`")),
    "override_without_value": train("learning_rate", says=("`learning_rate` must look like key=value",)),
    "yaml_not_a_mapping": Case(("train", "list.yaml"), ("list.yaml",), {"list.yaml": "- stage\n- sft\n"}),
    "yaml_syntax": Case(("train", "broken.yaml"), ("broken.yaml",), {"broken.yaml": "stage: [sft\nlr: 1\n"}),
    "json_config_wrong_type": Case(
        ("train", "c.json"), ("`lora_rank`", "'eight'"), {"c.json": json.dumps({**BASE, "lora_rank": "eight"})}
    ),
    # --- configs: ranges ----------------------------------------------------------------------------------------
    "batch_size_zero": train("per_device_train_batch_size=0", says=("`per_device_train_batch_size: 0`", "at least 1")),
    "accumulation_negative": train("gradient_accumulation_steps=-2", says=("`gradient_accumulation_steps: -2`",)),
    "lora_rank_negative": train("lora_rank=-1", says=("`lora_rank` is -1", "at least 1")),
    "lora_dropout_above_one": train("lora_dropout=2", says=("`lora_dropout` is 2", "[0, 1)")),
    "cutoff_zero": train("cutoff_len=0", says=("`cutoff_len` is 0", "positive number of tokens")),
    "val_size_above_one": train("val_size=1.5", says=("`val_size` is 1.5", "fraction")),
    "no_step_to_train": train("num_train_epochs=-1", "max_steps=-1", says=("`num_train_epochs: -1`",)),
    "quantization_bits": train("quantization_bit=3", says=("`quantization_bit: 3`", "4 or 8")),
    "workers_zero": train("ray_num_workers=0", says=("`ray_num_workers` is 0", "at least 1")),
    "top_p_above_one": train("top_p=2", says=("`top_p: 2`", "at most 1")),
    "temperature_negative": train("temperature=-1", says=("`temperature: -1`", "0 or more")),
    # --- configs: combinations and refusals ----------------------------------------------------------------------
    "two_precisions": train("bf16=true", "fp16=true", says=("`bf16: true` and `fp16: true`", "keep one")),
    "key_of_another_stage": train("pref_loss=ipo", says=("`pref_loss` (dpo)", "`stage: sft`")),
    "ppo_with_neftune": train(
        "stage=ppo", "reward_funcs=numeric_match", "neftune_noise_alpha=5", says=("`neftune_noise_alpha`", "ppo")
    ),
    "refused_feature": train("use_kt=true", says=("`use_kt: true`", "KTransformers", "refused rather than ignored")),
    "refused_method": train("finetuning_type=oft", says=("`finetuning_type: oft`",)),
    "template_unknown": train("template=nonexistent", says=("unknown template `nonexistent`", "llama3")),
    "deepspeed_file_missing": train(
        "deepspeed=missing/ds.json", says=("deepspeed config 'missing/ds.json' not found",)
    ),
    "lora_target_unknown": train("lora_target=not_a_module", says=("not_a_module",)),
    "model_folder_missing": train("model_name_or_path=no/such/model", says=("'no/such/model' does not exist",)),
    "storage_scheme_unknown": train("ray_storage_path=ftp://host/runs", says=("ftp://host/runs",)),
    # --- datasets ------------------------------------------------------------------------------------------------
    "dataset_not_registered": train("dataset=nope", says=("dataset `nope` is not in", "dataset_info.json")),
    "dataset_dir_missing": train("dataset_dir=nowhere", says=("no dataset_info.json in dataset_dir `nowhere`",)),
    "dataset_file_missing": Case(
        ("preprocess", "c.yaml", "dataset=bad"), ("missing.json",), info={"bad": {"file_name": "missing.json"}}
    ),
    "dataset_entry_without_file": Case(
        ("preprocess", "c.yaml", "dataset=bad"), ("`bad`",), info={"bad": {"formatting": "alpaca"}}
    ),
    "dataset_info_malformed": Case(
        ("preprocess", "c.yaml"), ("dataset_info.json",), {"data/dataset_info.json": '{"good": {"file_name": '}
    ),
    "json_malformed": preprocess(
        "bad.json", '[{"instruction": "hi", "output": "a"},\n {"instruction": oops}]', ("bad.json", "line 2")
    ),
    "jsonl_bad_line": preprocess(
        "bad.jsonl", '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n', ("bad.jsonl", "line 2")
    ),
    "not_utf8": preprocess(
        "latin1.json",
        '[{"instruction": "café", "output": "ok"}]'.encode("latin-1"),
        ("latin1.json: not UTF-8 text", "save it as UTF-8"),
    ),
    "utf16": preprocess(
        "utf16.json", '[{"instruction": "hi", "output": "ok"}]'.encode("utf-16"), ("utf16.json: not UTF-8 text",)
    ),
    "empty_file": preprocess("empty.json", "", ("empty.json",)),
    "empty_list": preprocess("none.json", "[]", ("none.json",)),
    "not_a_list_of_rows": preprocess("scalar.json", '"just a string"', ("scalar.json",)),
    "mixed_types_in_a_column": preprocess(
        "mixed.json",
        json.dumps([{"instruction": "a", "output": "b"}, {"instruction": ["x"], "output": 5}]),
        ("mixed.json",),
    ),
    "nan_in_a_text_column": preprocess(
        "nan.json", '[{"instruction": NaN, "output": "b"}]', ("nan.json row 1", "column `instruction` holds float NaN")
    ),
    "column_missing": preprocess(
        "nocol.json", json.dumps([{"question": "a", "answer": "b"}]), ("nocol.json", "instruction")
    ),
    "mapped_column_missing": preprocess(
        "mapped.json", json.dumps(GOOD_ROWS), ("`prompt`",), entry={"columns": {"prompt": "question"}}
    ),
    "formatting_unknown": preprocess(
        "fmt.json",
        json.dumps(GOOD_ROWS),
        ("entry `bad`", "formatting `xml`", "alpaca, sharegpt"),
        entry={"formatting": "xml"},
    ),
    "sharegpt_roles_out_of_order": preprocess(
        "chat.json",
        json.dumps([{"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]}]),
        ("chat.json",),
        entry={"formatting": "sharegpt"},
    ),
    "csv_ragged": preprocess("rows.csv", "instruction,output\na,b\nc,d,e,f\n", ("rows.csv",)),
    "ranking_dataset_for_sft": preprocess(
        "pairs.json",
        json.dumps([{"instruction": "a", "chosen": "b", "rejected": "c"}]),
        ("dataset `bad` is a ranking dataset", "`stage: sft` trains on one answer", "`stage: rm` or `stage: dpo`"),
        entry={"ranking": True, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}},
    ),
    "plain_dataset_for_dpo": Case(
        ("preprocess", "c.yaml", "stage=dpo"), ("`stage: dpo` compares a chosen and a rejected answer", "`good`")
    ),
    # --- valid, though odd: read as they are ---------------------------------------------------------------------
    "utf8_bom_is_read": preprocess("bom.json", b"\xef\xbb\xbf" + json.dumps(GOOD_ROWS).encode(), (), status=0),
    "crlf_jsonl_is_read": preprocess(
        "crlf.jsonl", "\r\n".join(json.dumps(row) for row in GOOD_ROWS) + "\r\n", (), status=0
    ),
    # --- pipeline YAML ------------------------------------------------------------------------------------------
    "pipeline_cycle": pipeline(
        [PRE, {"id": "a", "uses": "train", "needs": ["b"]}, {"id": "b", "uses": "train", "needs": ["a"]}], ("cycle",)
    ),
    "pipeline_needs_unknown": pipeline([PRE, {"id": "sft", "uses": "train", "needs": ["tok"]}], ("`tok`",)),
    "pipeline_duplicate_id": pipeline([PRE, {**PRE}], ("`data`",)),
    "pipeline_missing_output": pipeline(
        [
            PRE,
            {"id": "sft", "uses": "train", "needs": ["data"], "with": {"reward_model": "${steps.data.outputs.model}"}},
        ],
        ("steps.data.outputs.model",),
    ),
    "pipeline_unknown_kind": pipeline([{"id": "x", "uses": "deploy_everywhere"}], ("deploy_everywhere",)),
    "pipeline_no_steps": pipeline([], ("`steps`",)),
    # --- CLI arguments ------------------------------------------------------------------------------------------
    "command_unknown": Case(("nosuchcommand",), ("invalid choice: 'nosuchcommand'",)),
    "config_file_missing": Case(("train", "missing.yaml"), ("config file not found: missing.yaml",)),
    "board_language_unknown": Case(("webui", "--lang", "fr"), ("--lang 'fr' is not a board language",)),
    "board_exposed_without_login": Case(("webui", "--host", "0.0.0.0"), ("--host 0.0.0.0", "LF_RAY_BOARD_AUTH")),
    "run_id_unknown": Case(("runs", "show", "nope", "runs"), ("no run `nope`",)),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("LF_RAY_BOARD_AUTH", raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "good.json").write_text(json.dumps(GOOD_ROWS))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE))
    return tmp_path


@pytest.mark.parametrize("case_id", CASES)
def test_a_bad_input_is_refused_with_what_where_and_the_fix(case_id, workdir, capsys):
    case = CASES[case_id]
    info = {"good": {"file_name": "good.json"}, **case.info}
    (workdir / "data" / "dataset_info.json").write_text(json.dumps(info))
    for name, content in case.files.items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")
    try:
        status = main(list(case.argv))
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    captured = capsys.readouterr()
    message = captured.err
    assert status == case.status, f"{case_id}: exit {status}\n{captured.out[-2000:]}\n{message[-2000:]}"
    assert "Traceback" not in message + captured.out
    if case.status == 2:
        assert all(fragment in message for fragment in case.says), f"{case_id}: {message}"
        assert not (workdir / "out").exists() and not (workdir / "tok").exists()  # nothing written
        assert not list((workdir / "runs").rglob("manifest.json")) if (workdir / "runs").exists() else True
