"""Serve config → Ray Serve options, replica arguments, the dry-run plan and Ray Serve LLM's `LLMConfig` (vLLM)."""

from __future__ import annotations

import json
import pickle

import pytest

from lf_ray.config import ServeArguments, prepare_config
from lf_ray.constants import ENV_API_HOST, ENV_API_PORT, api_host, api_port
from lf_ray.errors import ConfigError
from lf_ray.serve.options import check_serve_config, model_deployment_options, replica_config, serve_plan
from lf_ray.serve.service import model_ids
from lf_ray.serve.vllm import vllm_llm_config


def cfg(*overrides: str):
    return prepare_config(None, ["model_name_or_path=builtin:tiny-qwen", *overrides])


def test_lora_modules_as_mapping_list_or_commas():
    assert ServeArguments(lora_modules={"a": "/x/a"}).lora_adapters() == {"a": "/x/a"}
    assert cfg("lora_modules=a=/x/one,/y/two/").serve.lora_adapters() == {"a": "/x/one", "two": "/y/two/"}
    assert model_ids(cfg("lora_modules=a=/x/one,/y/two")) == ["tiny-qwen", "a", "two"]
    assert model_ids(cfg("served_model_name=qwen", "lora_modules=a=/x")) == ["qwen", "a"]
    assert model_ids(cfg("infer_backend=vllm", "lora_modules=a=s3://b/a")) == ["tiny-qwen", "tiny-qwen:a"]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["num_replicas=2", 'autoscaling_config={"max_replicas": 3}'], "keep one"),
        (["num_replicas=0"], "use 1 or more"),
        (['autoscaling_config={"min_replicas": 3, "max_replicas": 2}'], "min_replicas 3 and max_replicas 2"),
        (["api_port=70000"], "from 1 to 65535"),
        (["max_batch_size=0"], "must be >= 1"),
        (["lora_modules=a=/x,a=/y"], "names two adapters `a`"),
        (["served_model_name=a", "lora_modules=a=/x"], "same as `served_model_name`"),
    ],
)
def test_serve_rules(overrides, match):
    with pytest.raises(ConfigError, match=match):
        cfg(*overrides)


def test_unservable_backend_is_refused():
    with pytest.raises(ConfigError, match="infer_backend: sglang"):
        check_serve_config(cfg("infer_backend=sglang"))


def test_an_api_key_is_refused_on_the_vllm_path_that_would_not_check_it(monkeypatch):
    check_serve_config(cfg("infer_backend=vllm"))  # an open endpoint: Ray Serve LLM's app as it is
    monkeypatch.setenv("API_KEY", "sk-secret")
    with pytest.raises(ConfigError, match=r"API_KEY is set, but `infer_backend: vllm` .* checks no API key") as err:
        check_serve_config(cfg("infer_backend=vllm"))
    assert "sk-secret" not in str(err.value)
    check_serve_config(cfg())  # lf-ray's own engine checks it


def test_deployment_options():
    assert model_deployment_options(cfg()) == {
        "ray_actor_options": {"num_cpus": 1},
        "max_ongoing_requests": 64,
        "max_queued_requests": -1,
        "num_replicas": 1,
    }
    gpu = model_deployment_options(cfg("num_replicas=3", "max_queued_requests=10"), cluster_gpus=8)
    assert (gpu["ray_actor_options"], gpu["num_replicas"], gpu["max_queued_requests"]) == ({"num_gpus": 1}, 3, 10)
    auto = model_deployment_options(cfg('autoscaling_config={"min_replicas": 0, "max_replicas": 4}'))
    assert auto["autoscaling_config"] == {"min_replicas": 0, "max_replicas": 4} and "num_replicas" not in auto
    assert model_deployment_options(cfg('ray_actor_options={"num_cpus": 4}'))["ray_actor_options"] == {"num_cpus": 4}


def test_replica_config_makes_local_paths_absolute(tmp_path, monkeypatch):
    (tmp_path / "adapter").mkdir()
    monkeypatch.chdir(tmp_path)
    replica = replica_config(cfg("lora_modules=a=adapter,b=s3://bucket/b", "temperature=0.2"))
    assert replica.serve.lora_adapters() == {"a": str(tmp_path / "adapter"), "b": "s3://bucket/b"}
    assert replica.model.model_name_or_path == "builtin:tiny-qwen" and replica.generating.temperature == 0.2
    assert pickle.loads(pickle.dumps(replica)) == replica  # what Serve ships to every replica, validated once


def test_host_and_port_from_config_then_environment(monkeypatch):
    monkeypatch.delenv(ENV_API_HOST, raising=False)
    monkeypatch.delenv(ENV_API_PORT, raising=False)
    assert (api_host(), api_port()) == ("127.0.0.1", 8000)
    monkeypatch.setenv(ENV_API_HOST, "0.0.0.0")
    monkeypatch.setenv(ENV_API_PORT, "9000")
    assert (api_host(), api_port(), api_host("10.0.0.1"), api_port(81)) == ("0.0.0.0", 9000, "10.0.0.1", 81)
    monkeypatch.setenv(ENV_API_PORT, "eighty")
    with pytest.raises(ConfigError, match="API_PORT='eighty'"):
        api_port()


def test_plan_names_url_models_and_scaling(monkeypatch):
    monkeypatch.delenv(ENV_API_HOST, raising=False)
    plan = serve_plan(cfg("api_port=8123", "route_prefix=/llm", "lora_modules=a=/x"), ["tiny-qwen", "a"])
    assert plan[0].startswith("# plan: serve")
    assert "url          http://127.0.0.1:8123/llm/v1" in plan
    assert "models       tiny-qwen, a" in plan
    batching = serve_plan(cfg("api_host=10.0.0.5", "max_batch_size=4", "batch_wait_timeout_s=0.2"), ["tiny-qwen"])
    assert "url          http://10.0.0.5:8000/v1" in batching
    assert any(line.startswith("batching     continuous, up to 4 rows, idle wait 0.2s") for line in batching)


def test_vllm_llm_config_is_a_valid_ray_serve_llm_config():
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig  # importable without vLLM

    config = vllm_llm_config(
        cfg(
            "infer_backend=vllm",
            "served_model_name=qwen-sft",
            "lora_modules=identity=s3://bucket/adapters/identity,math=s3://bucket/adapters/math",
            'autoscaling_config={"min_replicas": 1, "max_replicas": 4}',
            "vllm_maxlen=2048",
            "vllm_gpu_util=0.8",
            "vllm_enforce_eager=true",
            "vllm_max_lora_rank=64",
            "max_loras_per_replica=3",
            'vllm_config={"enable_prefix_caching": true}',
        )
    )
    llm = LLMConfig(**config)
    assert llm.model_loading_config.model_id == "qwen-sft"
    assert llm.lora_config.dynamic_lora_loading_path == "s3://bucket/adapters"
    assert llm.deployment_config["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4}
    assert {k: llm.engine_kwargs[k] for k in ("max_model_len", "gpu_memory_utilization", "enable_lora")} == {
        "max_model_len": 2048,
        "gpu_memory_utilization": 0.8,
        "enable_lora": True,
    }
    assert llm.engine_kwargs["enable_prefix_caching"] is True
    assert (llm.engine_kwargs["enforce_eager"], llm.engine_kwargs["max_lora_rank"]) == (True, 64)
    assert llm.lora_config.max_num_adapters_per_replica == 3
    assert json.dumps(config)  # plain data: it goes into a serveConfigV2 as is


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["lora_modules=a=/local/a"], "one cloud folder"),
        (["lora_modules=a=s3://x/a,b=s3://y/b"], "one cloud folder"),
        (["lora_modules=a=s3://x/other"], "one cloud folder"),
        (["adapter_name_or_path=/some/adapter"], "lf-ray export"),
        (["quantization_bit=4"], "vLLM quantizes with its own settings"),
    ],
)
def test_vllm_refuses_what_ray_serve_llm_cannot_load(overrides, match):
    with pytest.raises(ConfigError, match=match):
        vllm_llm_config(cfg("infer_backend=vllm", *overrides))


def test_vllm_app_needs_vllm():
    from lf_ray.serve.vllm import build_vllm_app

    with pytest.raises(ConfigError, match="ray\\[llm\\]"):
        build_vllm_app(cfg("infer_backend=vllm"))


def test_build_app_takes_the_keys_serve_run_and_kuberay_pass():
    from lf_ray.serve.app import build_app

    args = {"model_name_or_path": "builtin:tiny-qwen", "num_replicas": "2", "lora_modules": {"a": "/x/a"}}
    ingress = build_app(args)._bound_deployment  # `serve run ... num_replicas=2` passes strings
    server = ingress.init_args[0]._bound_deployment
    assert (ingress.name, ingress.init_args[1:]) == ("OpenAIIngress", ("tiny-qwen", ["a"], None, False))
    assert (server.name, server.num_replicas) == ("LLMServer", 2)
    assert server.init_args[0].serve.lora_adapters() == {"a": "/x/a"}
    reward = build_app({"model_name_or_path": "builtin:tiny-llama", "stage": "rm"})._bound_deployment
    assert (reward.init_args[0]._bound_deployment.name, reward.init_args[-1]) == ("RewardServer", True)
    with pytest.raises(ConfigError, match="num_replicas"):
        build_app({**args, "num_replicas": "two"})
