"""Decoding parameters of one request: the request's fields where given, LLaMA-Factory's generating defaults
(`temperature`, `top_p`, `max_new_tokens`, ... of the config) where left out, combined the way LF's API does."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lf_ray.serve.api_errors import BadRequest
from lf_ray.serve.engine import SamplingParams

if TYPE_CHECKING:
    from lf_ray.config import GeneratingArguments
    from lf_ray.serve.protocol import _SamplingFields

MAX_STOP_STRINGS = 4
"""OpenAI accepts up to four stop sequences."""


def _repetition_penalty(request: _SamplingFields, default: float) -> float:
    """LF passes `presence_penalty` to transformers as `repetition_penalty`; lf-ray also reads `frequency_penalty`
    and the vLLM-style `repetition_penalty` field. OpenAI's neutral 0 means no penalty (1.0)."""
    if request.repetition_penalty is not None:
        return request.repetition_penalty
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(request, name)
        if value is None:
            continue
        if value < 0:
            raise BadRequest(
                f"`{name}: {value}` is negative; lf-ray maps it onto transformers' repetition_penalty as "
                "LLaMA-Factory does, which must be > 0 (1.0 = off, > 1 discourages repeats). Fix: send 0 or a "
                "positive value, or send `repetition_penalty` directly.",
                param=name,
            )
        return value if value > 0 else 1.0
    return default


def _stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOP_STRINGS:
        raise BadRequest(
            f"`stop` has {len(stops)} sequences; at most {MAX_STOP_STRINGS} are allowed. Fix: send fewer.",
            param="stop",
        )
    return tuple(s for s in stops if s)


def resolve_sampling(
    request: _SamplingFields,
    generating: GeneratingArguments,
    *,
    budget: int,
    max_tokens: int | None = None,
) -> SamplingParams:
    """`budget` is how many tokens fit after the prompt (max_model_len - prompt tokens); `max_tokens` the request's
    token limit (chat: max_completion_tokens or max_tokens)."""
    do_sample = request.do_sample if request.do_sample is not None else generating.do_sample
    temperature = request.temperature if request.temperature is not None else generating.temperature
    top_p = request.top_p if request.top_p is not None else generating.top_p
    top_k = request.top_k if request.top_k is not None else generating.top_k
    if request.n > 1:  # several different answers need sampling (LF: temperature or 1.0)
        do_sample, temperature = True, temperature or 1.0
    if not temperature:
        do_sample = False
    default_tokens = generating.max_new_tokens if generating.max_new_tokens > 0 else generating.max_length
    limit = max_tokens if max_tokens is not None else default_tokens
    return SamplingParams(
        max_new_tokens=max(1, min(limit, budget)),
        do_sample=do_sample,
        temperature=temperature if do_sample else 1.0,
        top_p=top_p if do_sample else 1.0,
        top_k=top_k if do_sample else 0,
        repetition_penalty=_repetition_penalty(request, generating.repetition_penalty),
        stop=_stop_strings(request.stop),
        seed=request.seed,
        skip_special_tokens=generating.skip_special_tokens,
    )
