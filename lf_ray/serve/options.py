"""What a serve config asks Ray Serve for: deployment options of the model replicas, the arguments replicas are
built from, and the plan `--dry-run` prints. Plain data: no Ray import, unit-tested without a cluster."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray.constants import BUILTIN_PREFIX, ENV_API_KEY, api_host, api_key, api_port
from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

SERVE_BACKENDS = ("huggingface", "vllm")


def check_serve_config(cfg: LfRayConfig) -> None:
    """What `lf-ray serve` / `chat` need beyond the config rules: a model and a backend lf-ray can serve with."""
    if not cfg.model.model_name_or_path:
        raise ConfigError("`model_name_or_path` is not set. Fix: set it to a model folder or builtin:tiny-llama.")
    if cfg.model.infer_backend not in SERVE_BACKENDS:
        raise ConfigError(
            f"`infer_backend: {cfg.model.infer_backend}` cannot serve with lf-ray. Fix: use huggingface "
            "(transformers, CPU or GPU) or vllm (Ray Serve LLM, GPU)."
        )
    if cfg.model.infer_backend == "vllm" and api_key():
        raise ConfigError(
            f"{ENV_API_KEY} is set, but `infer_backend: vllm` serves Ray Serve LLM's own OpenAI app, which checks no "
            "API key: the endpoint would answer anyone. Fix: serve with infer_backend: huggingface (lf-ray's engine "
            f"checks {ENV_API_KEY} on every route), or unset {ENV_API_KEY} and put an authenticating proxy in front"
        )
    if cfg.finetuning.stage == "rm" and (cfg.model.infer_backend == "vllm" or cfg.serve.lora_adapters()):
        raise ConfigError(
            "`stage: rm` serves a reward model on the transformers engine, with its adapters merged; "
            "Fix: remove `infer_backend: vllm` and `lora_modules` (merge the rm adapter with `adapter_name_or_path`)"
        )
    if cfg.generating.num_beams > 1:
        raise ConfigError(
            f"`num_beams: {cfg.generating.num_beams}`: the serving engines decode one sequence per request (greedy "
            "or sampled), and the OpenAI API has no beams. Fix: remove it for serving; `lf-ray eval` predictions "
            "(`predict_with_generate`) use beam search."
        )


def model_deployment_options(cfg: LfRayConfig, *, cluster_gpus: float = 0) -> dict[str, Any]:
    """`LLMServer.options(...)`: replicas or autoscaling, per-replica resources, request limits.

    Without `ray_actor_options` a replica takes one GPU when the cluster has GPUs, else one CPU.
    """
    serve = cfg.serve
    actor = dict(serve.ray_actor_options or ({"num_gpus": 1} if cluster_gpus > 0 else {"num_cpus": 1}))
    options: dict[str, Any] = {
        "ray_actor_options": actor,
        "max_ongoing_requests": serve.max_ongoing_requests,
        "max_queued_requests": serve.max_queued_requests,
    }
    if serve.autoscaling_config:
        options["autoscaling_config"] = dict(serve.autoscaling_config)
    else:
        options["num_replicas"] = serve.num_replicas or 1
    return options


def _absolute(path: str | None) -> str | None:
    """A local path that exists becomes absolute (replicas may run in another working directory)."""
    if not path or path.startswith(BUILTIN_PREFIX):
        return path
    local = Path(path).expanduser()
    return str(local.resolve()) if local.exists() else path


def replica_config(cfg: LfRayConfig) -> LfRayConfig:
    """The config a replica runs with (validated once, on the driver; it pickles), local paths made absolute."""
    adapters = cfg.model.adapter_name_or_path
    model = dataclasses.replace(
        cfg.model,
        model_name_or_path=_absolute(cfg.model.model_name_or_path),
        adapter_name_or_path=[_absolute(p) for p in adapters] if adapters else adapters,
    )
    modules = {name: _absolute(path) for name, path in cfg.serve.lora_adapters().items()}
    serve = dataclasses.replace(cfg.serve, lora_modules=modules or None)
    return dataclasses.replace(cfg, model=model, serve=serve)


def serve_plan(cfg: LfRayConfig, model_ids: list[str]) -> list[str]:
    """The lines `lf-ray serve --dry-run` prints under `# plan: serve`."""
    serve = cfg.serve
    prefix = serve.route_prefix.rstrip("/")
    options = model_deployment_options(cfg)
    scaling = (
        f"autoscaling {serve.autoscaling_config}"
        if serve.autoscaling_config
        else f"{options['num_replicas']} replica(s)"
    )
    resources = serve.ray_actor_options or "auto: {num_gpus: 1} when the cluster has GPUs, else {num_cpus: 1}"
    return [
        "# plan: serve (dry run: nothing was loaded or deployed)",
        f"backend      {cfg.model.infer_backend}",
        f"model        {cfg.model.model_name_or_path}",
        f"models       {', '.join(model_ids)}",
        f"url          http://{api_host(serve.api_host)}:{api_port(serve.api_port)}{prefix}/v1",
        f"app          {serve.serve_app_name} ({scaling}, {resources} each)",
        f"batching     continuous, up to {serve.max_batch_size} rows, idle wait {serve.batch_wait_timeout_s}s; "
        f"{serve.max_ongoing_requests} ongoing per replica",
    ]
