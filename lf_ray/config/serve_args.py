"""`ServeArguments`: how `lf-ray serve` exposes a model: address, names, LoRA adapters, batching and Ray Serve scaling.

LLaMA-Factory's `api` reads only API_HOST / API_PORT / API_KEY from the environment; lf-ray keeps those (host and
port also as keys here, which win over the environment) and adds what Ray Serve can do: replicas, autoscaling,
per-replica resources, request limits, dynamic batching and several LoRA adapters per base model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lf_ray.config.coercion import parse_json_object, split_commas
from lf_ray.errors import ConfigError


@dataclass
class ServeArguments:
    """Arguments pertaining to serving the model behind the OpenAI-compatible API (`lf-ray serve`)."""

    api_host: str | None = field(
        default=None,
        metadata={"help": "Address the HTTP server binds to. Default: API_HOST, else 127.0.0.1 (local only)."},
    )
    api_port: int | None = field(
        default=None, metadata={"help": "Port of the HTTP server. Default: API_PORT, else 8000."}
    )
    served_model_name: str | None = field(
        default=None,
        metadata={
            "help": "The `model` id clients use for the base model (with `adapter_name_or_path` merged into it). "
            "Default: the builtin name or the model folder's name."
        },
    )
    lora_modules: dict[str, str] | list[str] | None = field(
        default=None,
        metadata={
            "help": "LoRA adapters served beside the base model, each picked by the request's `model`: a mapping "
            "{name: path}, or a list of `name=path` / plain paths (named after their folder)."
        },
    )
    serve_app_name: str = field(default="lf-ray", metadata={"help": "Name of the Ray Serve application."})
    route_prefix: str = field(
        default="/", metadata={"help": "HTTP path the application is mounted at (`/v1/...` lives under it)."}
    )
    num_replicas: int | None = field(
        default=None,
        metadata={"help": "Model replicas (Ray Serve `num_replicas`). Default 1; leave unset with autoscaling_config."},
    )
    autoscaling_config: dict | None = field(
        default=None,
        metadata={
            "help": "Ray Serve autoscaling of the model replicas, e.g. {min_replicas: 1, max_replicas: 4, "
            "target_ongoing_requests: 16} (a JSON string works too)."
        },
    )
    ray_actor_options: dict | None = field(
        default=None,
        metadata={
            "help": "Resources of each model replica, e.g. {num_gpus: 1} or {num_cpus: 2}. "
            "Default: {num_gpus: 1} when the cluster has GPUs, else {num_cpus: 1}."
        },
    )
    max_ongoing_requests: int = field(
        default=64,
        metadata={"help": "Requests one model replica works on at once (batched together); more wait in a queue."},
    )
    max_queued_requests: int = field(
        default=-1,
        metadata={"help": "Requests allowed to wait for a replica; past it clients get 503. -1: no limit."},
    )
    max_batch_size: int = field(
        default=16,
        metadata={
            "help": "Most rows (requests x n) one replica decodes together; a request joins the running decode at "
            "its next step while there is room, else waits for rows to finish."
        },
    )
    batch_wait_timeout_s: float = field(
        default=0.0,
        metadata={
            "help": "When a replica is idle, how long the first request waits for others to share its prefill "
            "(seconds). 0: start at once; requests that arrive later join the running decode at its next step."
        },
    )
    max_model_len: int | None = field(
        default=None,
        metadata={
            "help": "Longest prompt + completion in tokens; longer prompts are refused with 400. "
            "Default: the model's max_position_embeddings."
        },
    )
    max_loras_per_replica: int = field(
        default=8,
        metadata={"help": "LoRA adapters one replica keeps loaded (least recently used ones are unloaded)."},
    )
    keep_alive: bool = field(
        default=False,
        metadata={"help": "Pipeline serve step: keep serving after the smoke request (true) or shut down (false)."},
    )

    def __post_init__(self) -> None:
        self.autoscaling_config = parse_json_object(self.autoscaling_config)
        self.ray_actor_options = parse_json_object(self.ray_actor_options)
        self.lora_modules = parse_json_object(split_commas(self.lora_modules))

    def lora_adapters(self) -> dict[str, str]:
        """`lora_modules` as {name: path}: `name=path` entries keep their name, plain paths take their folder's."""
        entries = self.lora_modules
        if not entries:
            return {}
        if isinstance(entries, dict):
            return {str(name): str(path) for name, path in entries.items()}
        table: dict[str, str] = {}
        for entry in entries:
            name, sep, path = entry.partition("=")
            if not sep:
                name, path = Path(entry.rstrip("/")).name, entry
            if not name or not path:
                raise ConfigError(
                    f"`lora_modules` entry {entry!r} is malformed; write `name=path/to/adapter` or a plain folder path"
                )
            if name in table:
                raise ConfigError(
                    f"`lora_modules` names two adapters `{name}` ({table[name]} and {path}); "
                    "give them distinct names with `name=path`"
                )
            table[name] = path.strip()
        return table
