"""The key table: one group per key, help on every field, training keys = installed transformers + LF's."""

from __future__ import annotations

import dataclasses
import itertools

from lf_ray.config import LF_TRAINING_KEYS, training_key_table
from lf_ray.config.schema import GROUP_CLASSES, KEY_ALIASES, all_keys
from lf_ray.config.training_args import _read_cache, _write_cache


def group_key_sets() -> dict[str, set[str]]:
    sets = {group: {f.name for f in dataclasses.fields(cls)} for group, cls in GROUP_CLASSES.items()}
    sets["training"] = set(training_key_table())
    return sets


def test_no_key_is_in_two_groups():
    sets = group_key_sets()
    for (a, keys_a), (b, keys_b) in itertools.combinations(sets.items(), 2):
        assert keys_a.isdisjoint(keys_b), f"{a} and {b} share {keys_a & keys_b}"
    assert len(all_keys()) == sum(len(keys) for keys in sets.values())


def test_aliases_point_at_real_keys_and_are_not_keys_themselves():
    for alias, target in KEY_ALIASES.items():
        assert target in all_keys(), alias
        assert alias not in all_keys(), alias


def test_every_dataclass_field_has_help():
    for cls in GROUP_CLASSES.values():
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def test_known_keys_live_in_the_expected_group():
    groups = {name: spec.group for name, spec in all_keys().items()}
    expected = {
        "model_name_or_path": "model",
        "export_dir": "model",
        "vllm_maxlen": "model",
        "sglang_maxlen": "model",
        "use_kt": "model",
        "quantization_bit": "model",
        "enable_thinking": "data",
        "default_system": "data",
        "packing": "data",
        "lora_alpha": "finetuning",
        "pref_loss": "finetuning",
        "use_galore": "finetuning",
        "badam_mode": "finetuning",
        "swanlab_project": "finetuning",
        "max_new_tokens": "generating",
        "placement_strategy": "ray",
        "max_failures": "ray",
        "learning_rate": "training",
        "use_cache": "training",  # transformers 5; LF's KV-cache switch is `use_kv_cache`
        "warmup_ratio": "training",
        "fp8": "training",
    }
    assert {key: groups[key] for key in expected} == expected


def test_training_keys_are_the_installed_seq2seq_training_arguments():
    from transformers import Seq2SeqTrainingArguments

    fields = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init and not f.name.startswith("_")}
    table = training_key_table()
    assert fields <= set(table)
    # lf-ray owns exactly the LF keys transformers does not have (overwrite_output_dir, warmup_ratio, ...)
    assert set(table) - fields == set(LF_TRAINING_KEYS) - fields
    assert {"overwrite_output_dir", "warmup_ratio"} <= set(LF_TRAINING_KEYS) - fields
    spec, default, help_text = table["learning_rate"]
    assert (default, "float" in spec.kinds) == (5e-5, True)
    assert help_text


def test_disk_cache_round_trips(tmp_path):
    table = training_key_table()
    path = tmp_path / "cache.json"
    _write_cache(path, table)
    assert _read_cache(path) == table
    assert _read_cache(tmp_path / "missing.json") is None


def test_training_key_table_is_cached_under_lf_ray_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LF_RAY_HOME", str(tmp_path))
    training_key_table.cache_clear()
    try:
        table = training_key_table()
        (cache,) = (tmp_path / "config").glob("seq2seq_training_args-*.json")
        assert set(_read_cache(cache)) <= set(table)
    finally:
        training_key_table.cache_clear()
