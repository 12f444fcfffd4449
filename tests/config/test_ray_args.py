"""Ray keys from every LLaMA-Factory generation land on the same `RayArguments`."""

from __future__ import annotations

import pytest

from lf_ray.config import RAY_KEY_ALIASES, RayArguments, config_warnings, load_config
from lf_ray.errors import ConfigError

# LLaMA-Factory's first Ray integration (Jan 2025, integrations/ray/ray_train_args.py)
FIRST = {"num_workers": 4, "resources_per_worker": {"GPU": 1}, "placement_strategy": "SPREAD"}
# 2025, Ray Train TorchTrainer (hparams/training_args.py)
RAY_TRAIN = {
    "ray_num_workers": 4,
    "resources_per_worker": {"GPU": 1},
    "placement_strategy": "SPREAD",
    "ray_run_name": "llama3_8b_sft_lora",
    "ray_storage_path": "./saves",
    "ray_init_kwargs": {"runtime_env": {"env_vars": {"HF_HOME": "/data/hf"}}},
}
# 2026, PR #10109: ray.remote workers on a placement group
RAY_REMOTE = {
    "ray_num_workers": 4,
    "ray_init_kwargs": {"runtime_env": {"env_vars": {"HF_HOME": "/data/hf"}}},
    "master_addr": "10.0.0.1",
    "master_port": 29500,
}


def test_defaults():
    assert RayArguments() == RayArguments(
        ray_num_workers=1,
        resources_per_worker=None,
        placement_strategy="PACK",
        ray_storage_path="./saves",
        ray_storage_filesystem=None,
        ray_run_name=None,
        ray_init_kwargs=None,
        max_failures=2,
    )


def test_alias_table():
    assert RAY_KEY_ALIASES == {"num_workers": "ray_num_workers"}


def test_every_generation_parses_to_the_same_fields():
    first, ray_train, ray_remote = (load_config(None, base=keys).ray for keys in (FIRST, RAY_TRAIN, RAY_REMOTE))
    assert first == RayArguments(ray_num_workers=4, resources_per_worker={"GPU": 1}, placement_strategy="SPREAD")
    assert (ray_train.ray_num_workers, ray_train.resources_per_worker, ray_train.placement_strategy) == (
        first.ray_num_workers,
        first.resources_per_worker,
        first.placement_strategy,
    )
    assert ray_train.ray_init_kwargs == ray_remote.ray_init_kwargs
    assert ray_remote.ray_num_workers == 4
    assert (ray_remote.master_addr, ray_remote.master_port) == ("10.0.0.1", "29500")


def test_old_and_new_names_in_one_file_agreeing_is_fine(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("num_workers: 2\nray_num_workers: 2\n")
    assert load_config(path).ray.ray_num_workers == 2


def test_old_and_new_names_disagreeing_is_an_error(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("num_workers: 2\nray_num_workers: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"`num_workers` (2) and `ray_num_workers` (4) in {path} disagree: `num_workers` is an older name of "
        "`ray_num_workers`; keep only `ray_num_workers`"
    )


def test_override_beats_file_whatever_the_name(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("num_workers: 2\n")
    assert load_config(path, ["ray_num_workers=8"]).ray.ray_num_workers == 8
    path.write_text("ray_num_workers: 2\n")
    assert load_config(path, ["num_workers=8"]).ray.ray_num_workers == 8


def test_json_strings_from_the_command_line():
    ray = load_config(
        None,
        ['resources_per_worker={"GPU": 1, "CPU": 8}', 'ray_init_kwargs={"address": "auto"}', "max_failures=-1"],
    ).ray
    assert ray.resources_per_worker == {"GPU": 1, "CPU": 8}
    assert ray.ray_init_kwargs == {"address": "auto"}
    assert ray.max_failures == -1


def test_python_construction_accepts_json_strings_too():
    assert RayArguments(resources_per_worker='{"GPU": 2}').resources_per_worker == {"GPU": 2}


def test_bad_placement_strategy():
    with pytest.raises(ConfigError, match="expected one of: PACK, SPREAD, STRICT_PACK, STRICT_SPREAD"):
        load_config(None, ["placement_strategy=pack"])


def test_master_addr_and_port_are_accepted_but_flagged():
    cfg = load_config(None, base=RAY_REMOTE)
    assert config_warnings(cfg) == [
        "`master_addr` has no effect in lf-ray: Ray Train picks the rendezvous address of its worker group itself; "
        "remove it",
        "`master_port` has no effect in lf-ray: Ray Train picks the rendezvous port of its worker group itself; "
        "remove it",
    ]
    assert config_warnings(load_config(None, base=RAY_TRAIN)) == []
