"""DeepSpeed config resolution: LLaMA-Factory's `deepspeed: ds_z3_config.json`, made runnable on CPU.

"auto" values are left for transformers (`HfTrainerDeepSpeedConfig`) to fill from the training
arguments. On CPU, DeepSpeed would JIT-compile C++ ops on first use, minutes each on a fresh machine:
`fused_adam` (optimizer "AdamW"), `cpu_adam` (ZeRO-Offload) and `deepspeed_shm_comm` (every backend
init). `resolve_deepspeed_config(..., on_cpu=True)` makes the optimizer torch's AdamW and turns off
half precision; `disable_deepspeed_shm_build()` skips the shm op in each process before DeepSpeed
starts its communication backend.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lf_ray.errors import ConfigError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""Where `examples/deepspeed/` lives in a source checkout: LF YAMLs name those files relative to it."""

# Optimizer types whose DeepSpeed implementation is a C++ op that would be JIT-built on CPU.
_JIT_OPTIMIZERS = {"lamb": "FusedLamb", "lion": "FusedLion / DeepSpeedCPULion"}
_HALF_PRECISION = ("fp16", "bf16", "bfloat16")
_OFFLOADS = ("offload_optimizer", "offload_param")


def resolve_deepspeed_config(path_or_dict: str | os.PathLike | Mapping[str, Any], *, on_cpu: bool) -> dict[str, Any]:
    """The DeepSpeed config as a new dict, adjusted for CPU when `on_cpu`; "auto" values are kept.

    A relative path is looked up in the working directory, then in the project root (so
    `examples/deepspeed/ds_z2_config.json` from an LF YAML works from anywhere in a checkout).
    """
    if isinstance(path_or_dict, Mapping):
        config, where = copy.deepcopy(dict(path_or_dict)), "the `deepspeed` dict"
    else:
        path = _find_config(path_or_dict)
        config, where = _read_json(path), str(path)
    if on_cpu:
        _adapt_for_cpu(config, where)
    return config


def _find_config(path_like: str | os.PathLike) -> Path:
    path = Path(path_like).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, PROJECT_ROOT / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"deepspeed config {str(path_like)!r} not found (looked at {looked}); set `deepspeed` to an existing "
        "JSON file, e.g. examples/deepspeed/ds_z2_config.json, or to a dict"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"deepspeed config {path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}; "
            "fix the file (DeepSpeed configs are plain JSON: no comments, no trailing commas)"
        ) from err
    except OSError as err:
        raise ConfigError(f"deepspeed config {path} cannot be read: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError(
            f"deepspeed config {path} holds a {type(config).__name__}, not a JSON object; "
            'write it as {"zero_optimization": {...}, ...}'
        )
    return config


def _adapt_for_cpu(config: dict[str, Any], where: str) -> None:
    """Edit `config` in place so that DeepSpeed on CPU builds no C++ op and uses no half precision."""
    for key in _HALF_PRECISION:
        section = config.get(key)
        if isinstance(section, dict) and section.get("enabled", False) is not False:
            section["enabled"] = False
    zero = config.get("zero_optimization")
    offloading = False
    if isinstance(zero, dict):
        for key in _OFFLOADS:
            offload = zero.get(key)
            if not isinstance(offload, dict) or offload.get("device", "none") == "none":
                continue
            if offload.get("device") == "nvme":
                raise ConfigError(
                    f"{where}: zero_optimization.{key}.device is 'nvme', which needs DeepSpeed's async_io op "
                    "(not available on CPU); use 'cpu' or drop the offload"
                )
            offloading = True
            offload["pin_memory"] = False  # nothing to page-lock for: there is no device to copy to
    _use_torch_adam(config, where, offloading)


def _use_torch_adam(config: dict[str, Any], where: str, offloading: bool) -> None:
    optimizer = config.get("optimizer")
    if optimizer is None:
        # transformers fills the "auto"s from learning_rate, adam_beta1/2, adam_epsilon, weight_decay.
        auto = dict.fromkeys(("lr", "betas", "eps", "weight_decay"), "auto")
        config["optimizer"] = {"type": "AdamW", "params": {**auto, "torch_adam": True}}
        return
    kind = str(optimizer.get("type", "")).lower()
    if kind in ("adam", "adamw"):
        optimizer.setdefault("params", {})["torch_adam"] = True
    elif kind in _JIT_OPTIMIZERS or (kind == "adagrad" and offloading):
        op = _JIT_OPTIMIZERS.get(kind, "DeepSpeedCPUAdagrad")
        raise ConfigError(
            f"{where}: optimizer.type {optimizer.get('type')!r} runs as DeepSpeed's {op}, a C++ op that is "
            "compiled on first use on CPU (minutes); use 'AdamW' or remove the optimizer section"
        )


def disable_deepspeed_shm_build() -> bool:
    """Skip DeepSpeed's `deepspeed_shm_comm` op (a ~96 s C++ JIT build at every backend init on CPU).

    Call it in each process before `deepspeed.initialize` / `deepspeed.init_distributed`. The op only
    speeds up inference all-reduce on CPU; training collectives go through torch.distributed (gloo)
    either way. Does nothing unless DeepSpeed's accelerator is the CPU. Returns whether the build is
    now skipped; idempotent.
    """
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != "cpu":
        return False
    import deepspeed.comm  # noqa: F401  (loads deepspeed.comm.torch)

    # `deepspeed.comm.torch` as an attribute is the torch package (star-imported), hence sys.modules.
    module = sys.modules.get("deepspeed.comm.torch")
    if module is None or not hasattr(module, "build_shm_op"):
        logger.warning("deepspeed.comm.torch.build_shm_op not found in this DeepSpeed; the shm op may be built")
        return False
    module.build_shm_op = _no_shm_op
    return True


def _no_shm_op() -> None:
    """Stands in for `deepspeed.comm.torch.build_shm_op`: no shm op, so TorchBackend uses torch.distributed."""
    return None
