"""The Ray cluster launcher YAMLs validate against the schema the installed Ray ships, and say what they must."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_CONFIGS = sorted(p for p in (ROOT / "cluster_configs").glob("*.yaml") if p.name != "runtime_env.yaml")
RAY_SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_there_are_aws_gcp_and_onprem_configs():
    providers = {_load(path)["provider"]["type"] for path in LAUNCHER_CONFIGS}
    assert providers == {"aws", "gcp", "local"}


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_launcher_config_validates_like_ray_up_does(path):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _load(path)
    jsonschema.validate(config, RAY_SCHEMA)
    validate_config(prepare_config(config))  # what `ray up` runs before touching a cloud: defaults + schema
    assert path.read_text().splitlines()[0] == f"# ray up cluster_configs/{path.name}"


@pytest.mark.parametrize("path", LAUNCHER_CONFIGS, ids=lambda p: p.name)
def test_heads_are_gpu_less_and_nodes_install_lf_ray_from_the_mounted_checkout(path):
    config = _load(path)
    head_start = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head_start and "--num-gpus=0" in head_start
    if "available_node_types" in config:  # cloud providers: the head type declares no GPU, the workers do
        types = config["available_node_types"]
        assert types[config["head_node_type"]]["resources"]["GPU"] == 0
        assert any(t["resources"].get("GPU", 0) > 0 for name, t in types.items() if name != config["head_node_type"])
    (mount_target, mount_source), *_ = config["file_mounts"].items()
    assert mount_source == "./"
    assert any(f'pip install -e "{mount_target}"' in command for command in config["setup_commands"])


def test_a_broken_launcher_config_is_rejected():
    config = _load(ROOT / "cluster_configs" / "aws-gpu.yaml")
    misspelled = {**copy.deepcopy(config), "setup_command": ["pip install lf-ray"]}
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        jsonschema.validate(misspelled, RAY_SCHEMA)
    bad_type = copy.deepcopy(config)
    bad_type["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "four"
    with pytest.raises(jsonschema.ValidationError, match="'four' is not of type 'integer'"):
        jsonschema.validate(bad_type, RAY_SCHEMA)


def test_runtime_env_is_one_ray_job_submit_accepts():
    from ray.runtime_env import RuntimeEnv

    path = ROOT / "cluster_configs" / "runtime_env.yaml"
    fields = _load(path)
    assert set(fields) <= RuntimeEnv.known_fields  # Ray would take an unknown field for a plugin's name
    env = RuntimeEnv(**fields)
    assert env["env_vars"]["LF_RAY_HOME"].startswith("/mnt/shared") and ".git" in env["excludes"]
    assert "--runtime-env cluster_configs/runtime_env.yaml" in path.read_text().splitlines()[0]
    with pytest.raises(TypeError, match=r"env_vars'\] must be of type Dict\[str, str\]"):
        RuntimeEnv(**{**fields, "env_vars": {"LF_RAY_HOME": 1}})
