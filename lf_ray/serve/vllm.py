"""`infer_backend: vllm`: serve with Ray Serve LLM (`ray.serve.llm`, vLLM on GPUs) instead of lf-ray's engine.

`vllm_llm_config(cfg)` maps LF's keys onto an `LLMConfig` as plain data (unit-tested here, where vLLM cannot be
installed); `build_vllm_app` hands it to `ray.serve.llm.build_openai_app`. vLLM prompts with the tokenizer's
chat_template, so serve a model written by `lf-ray export` (it stores the training template there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lf_ray.errors import ConfigError
from lf_ray.serve.options import model_deployment_options, replica_config
from lf_ray.serve.service import served_model_name

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

REMOTE_PREFIXES = ("s3://", "gs://", "abfss://", "azure://")


def _lora_config(cfg: LfRayConfig) -> dict[str, Any] | None:
    """Ray Serve LLM loads adapters from one cloud folder holding one sub-folder per adapter (`model: base:name`)."""
    adapters = cfg.serve.lora_adapters()
    if not adapters:
        return None
    parents = {path.rstrip("/").rsplit("/", 1)[0] for path in adapters.values()}
    names_match = all(path.rstrip("/").rsplit("/", 1)[-1] == name for name, path in adapters.items())
    if len(parents) != 1 or not names_match or not next(iter(parents)).startswith(REMOTE_PREFIXES):
        raise ConfigError(
            f"`lora_modules` {adapters} cannot be served by vLLM through Ray Serve LLM: it loads adapters from one "
            "cloud folder (s3://, gs://, abfss://, azure://) holding a sub-folder per adapter, named as the adapter. "
            "Fix: upload them as <folder>/<name>/ and list `name: <folder>/<name>`, or use infer_backend: "
            "huggingface, or merge the adapter with `lf-ray export`."
        )
    return {"dynamic_lora_loading_path": parents.pop(), "max_num_adapters_per_replica": cfg.serve.max_loras_per_replica}


def _rope_overrides(cfg: LfRayConfig) -> dict[str, Any]:
    """`rope_scaling` as vLLM's `hf_overrides`: the same RoPE settings the transformers engine would load."""
    from transformers import AutoConfig

    from lf_ray.model.loader import hub_location, resolve_model_path
    from lf_ray.model.rope import rope_overrides

    name = cfg.model.model_name_or_path
    try:
        path = resolve_model_path(name, **hub_location(cfg))
        config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"`rope_scaling` with `infer_backend: vllm` reads the config of {name} to size the factor, and cannot: "
            f"{err}. Fix: give a local model folder, or set `vllm_config: {{hf_overrides: {{rope_parameters: ...}}}}`"
        ) from None
    return rope_overrides(config, cfg)


def vllm_llm_config(cfg: LfRayConfig) -> dict[str, Any]:
    """The `LLMConfig` (as a dict) for `cfg`: model id and source, vLLM engine keys, Serve deployment options."""
    if cfg.model.adapter_name_or_path:
        raise ConfigError(
            "`adapter_name_or_path` with `infer_backend: vllm`: Ray Serve LLM does not merge adapters at load time. "
            "Fix: run `lf-ray export` and serve the merged model, or list the adapter in `lora_modules`."
        )
    if cfg.model.quantization_bit is not None:
        raise ConfigError(
            f"`quantization_bit: {cfg.model.quantization_bit}` with `infer_backend: vllm`: vLLM quantizes with its own "
            "settings. Fix: remove `quantization_bit` and set `vllm_config: {quantization: bitsandbytes}`"
        )
    model = cfg.model
    engine_kwargs: dict[str, Any] = {
        "max_model_len": cfg.serve.max_model_len or model.vllm_maxlen,
        "gpu_memory_utilization": model.vllm_gpu_util,
        "enforce_eager": model.vllm_enforce_eager,
        "dtype": model.infer_dtype,
        "trust_remote_code": model.trust_remote_code,
        "max_num_seqs": cfg.serve.max_ongoing_requests,
        "revision": model.model_revision,
        "download_dir": model.cache_dir,
    }
    if model.rope_scaling:
        engine_kwargs["hf_overrides"] = _rope_overrides(cfg)
    lora = _lora_config(cfg)
    if lora is not None:
        engine_kwargs.update(enable_lora=True, max_lora_rank=model.vllm_max_lora_rank)
    engine_kwargs.update(model.vllm_config or {})
    deployment = model_deployment_options(cfg, cluster_gpus=1)
    deployment.pop("ray_actor_options")  # Ray Serve LLM places the engine itself (accelerator_type, placement)
    source = replica_config(cfg).model.model_name_or_path
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": served_model_name(cfg), "model_source": source},
        "engine_kwargs": engine_kwargs,
        "deployment_config": deployment,
    }
    if lora is not None:
        config["lora_config"] = lora
    return config


def build_vllm_app(cfg: LfRayConfig):
    """Ray Serve LLM's OpenAI app for `cfg` (needs vLLM and a GPU; `ray.serve.llm` refuses to import otherwise)."""
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as err:
        raise ConfigError(
            f"`infer_backend: vllm` needs Ray Serve LLM with vLLM ({err}). Fix: `pip install 'ray[llm]'` on a GPU "
            "machine, or use infer_backend: huggingface (lf-ray's transformers engine, CPU or GPU)."
        ) from None
    return build_openai_app({"llm_configs": [LLMConfig(**vllm_llm_config(cfg))]})
