"""`RayArguments`: how many Ray Train workers, what each one gets, where results go, how often to retry.

LLaMA-Factory has had three generations of Ray keys, and an LF YAML from any of them parses here:

- Jan 2025, its first Ray integration (`integrations/ray/ray_train_args.py`): `num_workers`,
  `resources_per_worker`, `placement_strategy`.
- 2025 (`hparams/training_args.py`, Ray Train `TorchTrainer`): `ray_run_name`, `ray_storage_path`,
  `ray_storage_filesystem`, `ray_num_workers`, `resources_per_worker`, `placement_strategy`,
  `ray_init_kwargs`.
- 2026 (PR #10109, hand-rolled `ray.remote` workers on a placement group): `ray_num_workers`,
  `ray_init_kwargs`, `master_addr`, `master_port`; the other keys were dropped.

lf-ray trains with Ray Train, so it keeps the 2025 names as its own. The names that differ are in
`RAY_KEY_ALIASES`. `master_addr` / `master_port` are accepted for compatibility but Ray Train sets up the
process group itself, so `rules.config_warnings` says they are unused. `max_failures` is lf-ray's
(Ray Train `FailureConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lf_ray.config.coercion import parse_json_object

PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]

# alias (a name LLaMA-Factory used) → lf-ray's field. Giving both with different values is an error.
RAY_KEY_ALIASES: dict[str, str] = {
    "num_workers": "ray_num_workers",
}


@dataclass
class RayArguments:
    """Arguments pertaining to the Ray training."""

    ray_num_workers: int = field(
        default=1, metadata={"help": "The number of workers for Ray training. Default is 1 worker."}
    )
    resources_per_worker: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "The resources per worker for Ray training, e.g. {GPU: 1} (a JSON string works too). "
            "Default (null) is decided at launch: 1 GPU per worker when the cluster has GPUs, else 1 CPU."
        },
    )
    placement_strategy: PlacementStrategy = field(
        default="PACK", metadata={"help": "The placement strategy for Ray training. Default is PACK."}
    )
    ray_storage_path: str = field(
        default="./saves",
        metadata={"help": "The storage path to save training results to (a local path, NFS or s3://...)."},
    )
    ray_storage_filesystem: Literal["s3", "gs", "gcs"] | None = field(
        default=None,
        metadata={"help": "The storage filesystem to use. If None specified, local filesystem will be used."},
    )
    ray_run_name: str | None = field(
        default=None,
        metadata={"help": "The training results will be saved at `<ray_storage_path>/ray_run_name`."},
    )
    ray_init_kwargs: dict | None = field(
        default=None,
        metadata={"help": "The arguments to pass to ray.init for Ray training. Default is None."},
    )
    max_failures: int = field(
        default=2,
        metadata={
            "help": "How many times Ray Train restarts a failed worker group from the last checkpoint "
            "(FailureConfig.max_failures); -1 retries forever, 0 never."
        },
    )
    master_addr: str | None = field(
        default=None,
        metadata={
            "help": "The master address for init_process_group (LLaMA-Factory >= 2026). "
            "Unused by lf-ray: Ray Train sets up the process group."
        },
    )
    master_port: str | None = field(
        default=None,
        metadata={
            "help": "The master port for init_process_group (LLaMA-Factory >= 2026). "
            "Unused by lf-ray: Ray Train sets up the process group."
        },
    )

    def __post_init__(self) -> None:
        self.resources_per_worker = parse_json_object(self.resources_per_worker)
        self.ray_init_kwargs = parse_json_object(self.ray_init_kwargs)
