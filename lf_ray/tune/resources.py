"""How much each trial holds and how many trials run at once, fitted to the cluster's free resources.

A trial is a driver (the Tune function, `driver_cpus`, 0.1 CPU by default) plus a Ray Train worker group.
Running more trials than the free resources hold does not queue politely on a small cluster: the drivers
of waiting trials sit on CPUs their own workers then cannot get. So concurrency never exceeds what fits,
and on a CPU-only cluster workers with no explicit `resources_per_worker` shrink to fit one trial.
Pure logic: the caller passes the cluster's free resources.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from lf_ray.config import RayArguments
    from lf_ray.config.tune_args import TuneSpec

_EPS = 1e-9


@dataclass(frozen=True)
class TrialPlan:
    """What each trial holds, how many run at once, and why (lines the sweep prints)."""

    driver_cpus: float
    num_workers: int
    resources_per_worker: dict[str, float]
    concurrency: int
    notes: tuple[str, ...]

    @property
    def per_trial(self) -> dict[str, float]:
        """Driver plus workers, by resource name."""
        total = {"CPU": self.driver_cpus}
        for name, amount in self.resources_per_worker.items():
            total[name] = round(total.get(name, 0.0) + amount * self.num_workers, 6)
        return total


def plan_trials(spec: TuneSpec, ray_args: RayArguments, free: Mapping[str, float]) -> TrialPlan:
    """Per-trial resources and concurrency for `spec` on a cluster with `free` resources (CPU, GPU, ...)."""
    driver = spec.resources.driver_cpus
    num_workers = spec.resources.num_workers or ray_args.ray_num_workers
    explicit = spec.resources.resources_per_worker or ray_args.resources_per_worker
    notes: list[str] = []
    if explicit:
        per_worker = {name: float(amount) for name, amount in explicit.items()}
    elif free.get("GPU", 0) > 0:
        per_worker = {"GPU": 1.0}
    else:
        per_worker = {"CPU": _fitted_worker_cpus(driver, num_workers, free.get("CPU", 0.0), notes)}
    draft = TrialPlan(driver, num_workers, per_worker, 1, ())
    fits = _trials_that_fit(draft.per_trial, free)
    if fits < 1:
        raise ConfigError(
            f"one trial needs {_fmt(draft.per_trial)} (a {driver} CPU driver + {num_workers} worker(s) x "
            f"{_fmt(per_worker)}) but the Ray cluster has {_fmt(free)} free; lower tune.resources_per_trial "
            "(num_workers, resources_per_worker), or add nodes to the cluster"
        )
    concurrency = min(fits, spec.num_trials)
    if spec.max_concurrent_trials is not None and spec.max_concurrent_trials < concurrency:
        concurrency = spec.max_concurrent_trials
    elif spec.max_concurrent_trials is not None and spec.max_concurrent_trials > fits:
        notes.append(
            f"max_concurrent_trials {spec.max_concurrent_trials} lowered to {fits}: more would wait on resources "
            "held by other trials' drivers"
        )
    notes.append(
        f"concurrency: {concurrency} trial(s) at a time; each holds {_fmt(draft.per_trial)} "
        f"({driver} CPU driver + {num_workers} worker(s) x {_fmt(per_worker)}), cluster free {_fmt(free)}"
    )
    return TrialPlan(driver, num_workers, per_worker, concurrency, tuple(notes))


def _fitted_worker_cpus(driver: float, num_workers: int, free_cpus: float, notes: list[str]) -> float:
    """One CPU a worker, or less when one trial would not fit otherwise (a 2-core machine)."""
    if driver + num_workers <= free_cpus + _EPS:
        return 1.0
    share = math.floor((free_cpus - driver) / num_workers * 100) / 100
    if share <= 0:
        return 1.0  # nothing fits; plan_trials reports it
    notes.append(
        f"workers get {share} CPU each (not 1) so that a trial fits in {free_cpus:g} free CPUs; "
        "set resources_per_worker to choose"
    )
    return share


def _trials_that_fit(per_trial: Mapping[str, float], free: Mapping[str, float]) -> int:
    counts = [math.floor((free.get(name, 0.0) + _EPS) / need) for name, need in per_trial.items() if need > 0]
    return min(counts) if counts else 0


def _fmt(resources: Mapping[str, float]) -> str:
    shown = {name: round(float(amount), 3) for name, amount in resources.items() if _is_schedulable(name)}
    return "{" + ", ".join(f"{name}: {amount:g}" for name, amount in sorted(shown.items())) + "}"


def _is_schedulable(name: str) -> bool:
    """CPU, GPU and custom resources; not memory or the per-node markers Ray lists beside them."""
    return name not in ("memory", "object_store_memory") and not name.startswith(("node:", "accelerator_type:"))
