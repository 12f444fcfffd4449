"""load_config: file formats, merge order, overrides, coercion and the errors users see."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lf_ray.config import LfRayConfig, field_help, group_of, load_config, parse_overrides
from lf_ray.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_overrides_are_yaml_values_coerced_to_the_field_type(tmp_path):
    path = write(tmp_path, "model_name_or_path: builtin:tiny-llama\nlearning_rate: 5.0e-5\n")
    cfg = load_config(
        path,
        [
            "learning_rate=1e-4",  # YAML 1.1 reads this as a string
            "lora_target=q_proj,v_proj",
            "bf16=false",
            "--num_train_epochs=2",
            "dataset=identity, alpaca_en_demo",
            "default_system=Answer: briefly",  # not valid YAML: kept as text
            "max_samples=",  # empty: null
        ],
    )
    assert cfg.training["learning_rate"] == 0.0001 and isinstance(cfg.training["learning_rate"], float)
    assert cfg.finetuning.lora_target == ["q_proj", "v_proj"]
    assert cfg.training["bf16"] is False
    assert cfg.training["num_train_epochs"] == 2
    assert cfg.data.dataset == ["identity", "alpaca_en_demo"]
    assert cfg.data.default_system == "Answer: briefly"
    assert cfg.data.max_samples is None


def test_yaml_1_1_exponent_floats_in_a_file_become_floats(tmp_path):
    path = write(tmp_path, "learning_rate: 1e-4\nlora_dropout: 5e-2\nval_size: '0.1'\nlora_rank: '16'\n")
    cfg = load_config(path)
    assert cfg.training["learning_rate"] == 1e-4
    assert cfg.finetuning.lora_dropout == 0.05
    assert cfg.data.val_size == 0.1
    assert cfg.finetuning.lora_rank == 16


def test_merge_order_is_base_then_file_then_overrides(tmp_path):
    path = write(tmp_path, "lora_rank: 16\ncutoff_len: 1024\n")
    base = {"lora_rank": 4, "cutoff_len": 512, "template": "llama3"}
    cfg = load_config(path, ["cutoff_len=256"], base=base)
    assert (cfg.data.template, cfg.finetuning.lora_rank, cfg.data.cutoff_len) == ("llama3", 16, 256)
    assert cfg.source == str(path)


def test_no_file_means_base_and_overrides_only():
    cfg = load_config(None, ["stage=dpo"], base={"model_name_or_path": "builtin:tiny-qwen"})
    assert (cfg.model.model_name_or_path, cfg.finetuning.stage) == ("builtin:tiny-qwen", "dpo")
    assert load_config(None) == LfRayConfig()


def test_json_config(tmp_path):
    path = write(tmp_path, json.dumps({"stage": "pt", "dataset": "c4_demo", "learning_rate": 1e-4}), "cfg.json")
    cfg = load_config(path)
    assert (cfg.finetuning.stage, cfg.data.dataset, cfg.training["learning_rate"]) == ("pt", ["c4_demo"], 1e-4)


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing yet\n")) == LfRayConfig()


def test_unknown_key_suggests_the_closest(tmp_path):
    path = write(tmp_path, "learning_rat: 1.0e-4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"unknown key `learning_rat` in {path}; did you mean `learning_rate`?"


def test_unknown_key_from_an_override_names_the_overrides():
    with pytest.raises(
        ConfigError, match="unknown key `lora_rnak` in command-line overrides; did you mean `lora_rank`"
    ):
        load_config(None, ["lora_rnak=8"])


def test_unknown_key_without_a_close_match(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key `zzqx`.*not an argument of LLaMA-Factory"):
        load_config(write(tmp_path, "zzqx: 1\n"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("lora_rank: eight", "invalid value for `lora_rank` in {path}: got 'eight' (str); expected int"),
        ("bf16: maybe", "invalid value for `bf16` in {path}: got 'maybe' (str); expected bool"),
        ("mix_strategy: shuffle", "expected one of: concat, interleave_under, interleave_over"),
        ("stage: a2c", "expected one of: pt, sft, rm, ppo, dpo, kto, grpo"),
        ("val_size: [0.1]", "invalid value for `val_size` in {path}: got [0.1] (list); expected float"),
        ("resources_per_worker: lots", "expected dict or null"),
        ("learning_rate: fast", "invalid value for `learning_rate` in {path}: got 'fast' (str); expected"),
        ("interleave_probs: 0.5,abc", "invalid value for `interleave_probs`"),
        ("lora_rank: true", "got True (bool); expected int"),
    ],
)
def test_wrong_types_name_key_value_and_expected_type(tmp_path, line, expected):
    path = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected.format(path=path) in str(err.value)


def test_all_key_and_type_problems_are_reported_together(tmp_path):
    path = write(tmp_path, "lora_rnak: 8\nlora_rank: eight\ncutoff_len: long\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["learning_rat=1"])
    message = str(err.value)
    assert message.startswith(f"4 problems in {path}:")
    for part in ("`lora_rnak`", "`lora_rank`", "`cutoff_len`", "`learning_rat` in command-line overrides"):
        assert part in message


def test_json_strings_and_integral_values_are_accepted(tmp_path):
    path = write(tmp_path, 'resources_per_worker: \'{"GPU": 1, "CPU": 4}\'\nlora_rank: 16.0\nmaster_port: 29500\n')
    cfg = load_config(path)
    assert cfg.ray.resources_per_worker == {"GPU": 1, "CPU": 4}
    assert cfg.finetuning.lora_rank == 16 and isinstance(cfg.finetuning.lora_rank, int)
    assert cfg.ray.master_port == "29500"


def test_old_spellings_are_mapped(tmp_path):
    cfg = load_config(write(tmp_path, "evaluation_strategy: steps\nquantization_method: bitsandbytes\n"))
    assert cfg.training == {"eval_strategy": "steps"}
    assert cfg.model.quantization_method == "bnb"
    cfg = load_config(None, ["new_special_tokens=<a>,<b>"])
    assert cfg.model.add_special_tokens == ["<a>", "<b>"]


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "stage: sft\nlora_rank: 8\n  cutoff_len: 1024\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml line 3, column \d+: invalid YAML"):
        load_config(path)


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = write(tmp_path, "lora_rank: 8\nstage: sft\nlora_rank: 16\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: invalid YAML \(duplicate key `lora_rank`"):
        load_config(path)


def test_json_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, '{\n  "stage": "sft",\n  "lora_rank": 8,\n}\n', "cfg.json")
    with pytest.raises(ConfigError, match=r"cfg\.json line 4, column 1: invalid JSON"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml.*check the path"):
        load_config(tmp_path / "nope.yaml")


def test_unsupported_suffix(tmp_path):
    with pytest.raises(ConfigError, match=r"unsupported config file type `\.toml`.*use \.yaml, \.yml or \.json"):
        load_config(write(tmp_path, "a = 1\n", "cfg.toml"))


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"must hold a mapping of `key: value` pairs at the top level, got a list"):
        load_config(write(tmp_path, "- stage: sft\n- lora_rank: 8\n", "cfg.yml"))


def test_override_without_equals_sign():
    with pytest.raises(ConfigError, match="override `bf16` must look like key=value"):
        parse_overrides(["bf16"])


def test_to_dict_round_trips(tmp_path):
    cfg = load_config(
        None,
        [
            "model_name_or_path=builtin:tiny-llama",
            "dataset=identity",
            "interleave_probs=1.0",
            "mix_strategy=interleave_under",
            "resources_per_worker={GPU: 1}",
            "learning_rate=2e-4",
            "seed=7",
        ],
    )
    minimal = cfg.to_dict(non_default_only=True)
    assert minimal == {
        "model_name_or_path": "builtin:tiny-llama",
        "dataset": ["identity"],
        "mix_strategy": "interleave_under",
        "interleave_probs": [1.0],
        "resources_per_worker": {"GPU": 1},
        "learning_rate": 2e-4,
        "seed": 7,
    }
    assert load_config(None, base=minimal) == cfg

    full = cfg.to_dict()
    assert full["lora_target"] == ["all"] and full["save_steps"] == 500 and full["ray_num_workers"] == 1
    assert load_config(None, base=full) == cfg

    path = write(tmp_path, cfg.to_yaml())
    assert load_config(path) == cfg
    assert cfg.to_yaml(non_default_only=True).startswith("### model\nmodel_name_or_path: builtin:tiny-llama\n")


def test_equality_treats_unset_training_keys_as_defaults():
    assert load_config(None, ["seed=42"]) == load_config(None)
    assert load_config(None, ["seed=43"]) != load_config(None)


def test_group_of():
    assert group_of("learning_rate") == "training"
    assert group_of("overwrite_output_dir") == "training"
    assert group_of("lora_rank") == "finetuning"
    assert group_of("template") == "data"
    assert group_of("top_p") == "generating"
    assert group_of("infer_backend") == "model"
    assert group_of("num_workers") == "ray"
    assert LfRayConfig.group_of("placement_strategy") == "ray"
    with pytest.raises(ConfigError, match="did you mean `lora_rank`"):
        group_of("lora_rnk")


def test_field_help_covers_every_group():
    table = field_help()
    assert table["lora_rank"] == ("finetuning", "The intrinsic dimension for LoRA fine-tuning.", 8)
    assert table["lora_target"][2] == ["all"]
    assert table["dataset_dir"] == ("data", "Path to the folder containing the datasets.", "data")
    assert table["ray_num_workers"][0] == "ray"
    assert table["lora_modules"][0] == "serve"
    assert table["max_new_tokens"][0] == "generating"
    assert table["learning_rate"][0] == "training" and table["learning_rate"][2] == 5e-5
    assert "warmup_steps" in table["warmup_ratio"][1]
    assert table["n_shot"] == ("eval", "Number of examplars for few-shot learning.", 5)
    groups = {group for group, _, _ in table.values()}
    assert groups == {"model", "data", "finetuning", "generating", "ray", "eval", "tune", "serve", "training"}
    assert all(help_text for _, help_text, _ in table.values() if _ != "training")


def test_importing_the_package_does_not_import_transformers():
    code = "import sys, lf_ray.config; print('transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_engine_configs_take_json_objects():
    assert load_config(None, ['vllm_config={"max_num_seqs": 8}']).model.vllm_config == {"max_num_seqs": 8}
    with pytest.raises(ConfigError, match=r"invalid value for `vllm_config`.*expected a JSON object"):
        load_config(None, ["vllm_config={max_num_seqs: 8"])
