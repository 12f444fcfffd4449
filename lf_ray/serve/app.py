"""Deploy lf-ray's OpenAI-compatible API with Ray Serve, and the calls the CLI and the pipeline's serve step use:

    endpoint = start_serve(cfg, blocking=False)   # deploy on the current (or a new local) Ray
    body = smoke_request(endpoint)                # one real chat completion
    stop_serve(endpoint)

`build_app` is the import-path builder for `serve run lf_ray.serve.app:build_app model_name_or_path=...` and
KubeRay's RayService (`serveConfigV2: applications: [{import_path: lf_ray.serve.app:build_app, args: {...}}]`).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lf_ray.constants import api_host, api_key, api_port
from lf_ray.errors import LfRayError
from lf_ray.serve.options import check_serve_config, model_deployment_options, replica_config
from lf_ray.serve.service import model_ids

if TYPE_CHECKING:
    from ray.serve import Application

    from lf_ray.config import LfRayConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeEndpoint:
    """A deployed application: where it answers and which `model` ids it serves (base first, then adapters)."""

    url: str
    """Base URL of the OpenAI API, ending in /v1 (what an OpenAI client takes as base_url)."""
    app_name: str
    model_ids: list[str]
    api_key: str | None = field(default=None, repr=False)

    @property
    def base_model(self) -> str:
        return self.model_ids[0]


def build_app(args: dict[str, Any]) -> Application:
    """The Ray Serve application for LF-style keys (`model_name_or_path`, `template`, `lora_modules`, ...)."""
    from lf_ray.config import prepare_config

    return build_app_from_config(prepare_config(None, base=args))


def build_app_from_config(cfg: LfRayConfig, *, cluster_gpus: float | None = None, key: str | None = None):
    """Ingress + model replicas for `cfg` (a reward model's for `stage: rm`; Ray Serve LLM's app for
    `infer_backend: vllm`)."""
    import ray

    from lf_ray.serve.deployments import LLMServer, OpenAIIngress, RewardServer

    check_serve_config(cfg)
    if cfg.model.infer_backend == "vllm":
        from lf_ray.serve.vllm import build_vllm_app

        return build_vllm_app(cfg)
    if cluster_gpus is None:
        cluster_gpus = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    reward = cfg.finetuning.stage == "rm"
    deployment = RewardServer if reward else LLMServer
    server = deployment.options(**model_deployment_options(cfg, cluster_gpus=cluster_gpus)).bind(replica_config(cfg))
    ids = model_ids(cfg)
    return OpenAIIngress.bind(server, ids[0], ids[1:], key, reward)


def _http_address(host: str, port: int) -> tuple[str, int]:
    """Start Serve's HTTP proxy on host:port, or report where an already running one listens."""
    from ray import serve
    from ray.serve.context import _get_global_client

    serve.start(http_options={"host": host, "port": port})
    config = _get_global_client().http_config
    if (config.host, config.port) != (host, port):
        logger.warning(
            "Ray Serve already listens on %s:%s in this cluster; the app is served there, not on %s:%s.",
            config.host,
            config.port,
            host,
            port,
        )
    return config.host, config.port


def start_serve(cfg: LfRayConfig, *, blocking: bool = False) -> ServeEndpoint:
    """Deploy `cfg` on the current Ray (started or joined as the config says) and wait until it answers.

    `blocking=True` then serves until Ctrl-C or SIGTERM (a KeyboardInterrupt, see `cli.main`) and removes the
    application, as `lf-ray serve` does; the interruption goes on to the CLI, which exits 130 or 143.
    """
    from ray import serve

    from lf_ray.cluster import ensure_ray

    check_serve_config(cfg)
    ensure_ray(cfg.ray.ray_init_kwargs)
    host, port = _http_address(api_host(cfg.serve.api_host), api_port(cfg.serve.api_port))
    key = api_key()
    prefix = cfg.serve.route_prefix.rstrip("/")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    endpoint = ServeEndpoint(f"http://{shown}:{port}{prefix}/v1", cfg.serve.serve_app_name, model_ids(cfg), key)
    try:
        serve.run(build_app_from_config(cfg, key=key), name=endpoint.app_name, route_prefix=prefix or "/")
        _wait_until_routed(endpoint)
        if blocking:
            adapters = f" + adapters {', '.join(endpoint.model_ids[1:])}" if len(endpoint.model_ids) > 1 else ""
            print(f"lf-ray serve: {endpoint.base_model}{adapters} at {endpoint.url} (Ctrl-C to stop)", flush=True)
            while True:
                time.sleep(3600)
    finally:
        if blocking:  # interrupted, while deploying or serving
            print("lf-ray serve: removing the application", flush=True)
            stop_serve(endpoint)
    return endpoint


ROUTE_WAIT_S = 30.0


def _wait_until_routed(endpoint: ServeEndpoint) -> None:
    """`serve.run` returns once the replicas run; the HTTP proxy learns the new route a moment later and answers 404
    until then. Wait for the route, so the endpoint is usable when it is handed out."""
    request = urllib.request.Request(f"{endpoint.url}/models")
    if endpoint.api_key:
        request.add_header("Authorization", f"Bearer {endpoint.api_key}")
    deadline = time.monotonic() + ROUTE_WAIT_S
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5):
                return
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            if time.monotonic() > deadline:
                raise LfRayError(
                    f"the application is deployed but {endpoint.url}/models did not answer within {ROUTE_WAIT_S:.0f} s "
                    f"({err}). Fix: check `serve status` and that the address is reachable from here."
                ) from None
            time.sleep(0.2)


def stop_serve(endpoint: ServeEndpoint) -> None:
    """Remove the application (other Serve applications of the cluster keep running)."""
    from ray import serve

    serve.delete(endpoint.app_name)


def smoke_request(endpoint: ServeEndpoint, *, prompt: str = "Hello!", timeout_s: float = 120) -> dict[str, Any]:
    """One real, greedy chat completion against the endpoint; returns the response body."""
    payload = {
        "model": endpoint.base_model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
        "temperature": 0,
    }
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    request = urllib.request.Request(
        f"{endpoint.url}/chat/completions", data=json.dumps(payload).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise LfRayError(
            f"the smoke request to {endpoint.url}/chat/completions failed with HTTP {err.code}: "
            f"{err.read().decode(errors='replace')[:500]}. Fix: read the replica's log (`ray logs` or /tmp/ray)."
        ) from None
    except (urllib.error.URLError, TimeoutError) as err:
        raise LfRayError(
            f"the smoke request to {endpoint.url}/chat/completions got no answer ({err}). "
            "Fix: check that the application is running (`serve status`) and the address is reachable."
        ) from None
