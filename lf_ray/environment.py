"""`lf-ray env`: what the stack is made of and what it runs on."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("torch", "ray", "transformers", "peft", "trl", "datasets", "deepspeed", "mlflow", "pyarrow", "tokenizers")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def accelerator() -> str:
    try:
        import torch
    except ImportError:
        return "unknown (torch not installed)"
    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"GPU: {torch.cuda.device_count()} x {', '.join(sorted(names))} (CUDA {torch.version.cuda})"
    return "CPU only (no CUDA device)"


def describe_environment() -> str:
    from lf_ray import __version__
    from lf_ray.cluster import cluster_resources
    from lf_ray.errors import LfRayError

    lines = [f"lf-ray        {__version__}", f"python       {platform.python_version()} ({platform.platform()})"]
    lines += [f"{name:12} {version}" for name, version in package_versions().items()]
    lines.append(f"devices      {accelerator()}; {os.cpu_count()} CPU cores")
    try:
        resources = cluster_resources()
    except LfRayError as err:
        return "\n".join([*lines, f"ray cluster  {err}"])
    if resources is None:
        lines.append(
            "ray cluster  none reachable (set RAY_ADDRESS or run `ray start --head`; commands start a local one)"
        )
    else:
        shown = {key: value for key, value in sorted(resources.items()) if not key.startswith("node:")}
        lines.append(f"ray cluster  {shown}")
    return "\n".join(lines)
