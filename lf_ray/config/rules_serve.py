"""Cross-field rules about generating and serving: beams, replicas vs autoscaling, ports, batching and adapter
names.

Each rule returns None or one message: what is wrong, which keys, how to fix it. `rules.validate_config`
runs them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig


def beam_settings(cfg: LfRayConfig) -> str | None:
    beams = cfg.data.eval_num_beams or cfg.generating.num_beams
    if beams < 1:
        return f"`num_beams` / `eval_num_beams` is {beams}; use 1 (no beam search) or more"
    if beams == 1 and cfg.generating.length_penalty != 1.0:
        return (
            f"`length_penalty: {cfg.generating.length_penalty}` scores beam-search candidates, but there is one beam; "
            "set `num_beams` (or `eval_num_beams`) above 1, or remove it"
        )
    return None


def sampling_ranges(cfg: LfRayConfig) -> str | None:
    """The decoding keys' ranges (transformers' `generate` refuses the rest only when it first samples)."""
    gen = cfg.generating
    bad = [
        f"`temperature: {gen.temperature}` (0 or more; 0 decodes greedily)" if gen.temperature < 0 else "",
        f"`top_p: {gen.top_p}` (above 0, at most 1)" if not 0 < gen.top_p <= 1 else "",
        f"`top_k: {gen.top_k}` (0 or more; 0 turns it off)" if gen.top_k < 0 else "",
        f"`repetition_penalty: {gen.repetition_penalty}` (above 0; 1.0 is none)" if gen.repetition_penalty <= 0 else "",
        f"`max_new_tokens: {gen.max_new_tokens}` (0 or more; 0 defers to max_length)" if gen.max_new_tokens < 0 else "",
    ]
    bad = [problem for problem in bad if problem]
    return f"out of range: {'; '.join(bad)}" if bad else None


def replicas_and_autoscaling(cfg: LfRayConfig) -> str | None:
    serve = cfg.serve
    if serve.num_replicas is not None and serve.autoscaling_config:
        return (
            f"`num_replicas: {serve.num_replicas}` and `autoscaling_config` both set the replica count; "
            "keep one (autoscaling_config's min_replicas / max_replicas bound the autoscaler)"
        )
    if serve.num_replicas is not None and serve.num_replicas < 1:
        return f"`num_replicas` is {serve.num_replicas}; use 1 or more (or autoscaling_config with min_replicas: 0)"
    return None


def autoscaling_bounds(cfg: LfRayConfig) -> str | None:
    auto = cfg.serve.autoscaling_config or {}
    low, high = auto.get("min_replicas", 1), auto.get("max_replicas", 1)
    if not isinstance(low, int) or not isinstance(high, int) or low < 0 or high < 1 or low > high:
        return (
            f"`autoscaling_config` has min_replicas {low!r} and max_replicas {high!r}; they must be whole numbers "
            "with 0 <= min_replicas <= max_replicas and max_replicas >= 1"
        )
    return None


def api_port_range(cfg: LfRayConfig) -> str | None:
    port = cfg.serve.api_port
    if port is not None and not 0 < port < 65536:
        return f"`api_port` is {port}; use a TCP port from 1 to 65535 (e.g. 8000)"
    return None


def batching_limits(cfg: LfRayConfig) -> str | None:
    serve = cfg.serve
    if serve.max_batch_size < 1 or serve.batch_wait_timeout_s < 0 or serve.max_ongoing_requests < 1:
        return (
            f"`max_batch_size` ({serve.max_batch_size}) and `max_ongoing_requests` ({serve.max_ongoing_requests}) "
            f"must be >= 1 and `batch_wait_timeout_s` ({serve.batch_wait_timeout_s}) >= 0"
        )
    if serve.max_model_len is not None and serve.max_model_len < 2:
        return f"`max_model_len` is {serve.max_model_len}; use the model's context length, e.g. 2048"
    return None


def lora_module_names(cfg: LfRayConfig) -> str | None:
    try:
        adapters = cfg.serve.lora_adapters()
    except ConfigError as err:
        return str(err)
    base = cfg.serve.served_model_name
    if base is not None and base in adapters:
        return f"`lora_modules` has an adapter named `{base}`, the same as `served_model_name`; rename one of them"
    return None


SERVE_RULES = (
    beam_settings,
    sampling_ranges,
    replicas_and_autoscaling,
    autoscaling_bounds,
    api_port_range,
    batching_limits,
    lora_module_names,
)
