"""A `TuneSpec` as Ray Tune objects: the search space, the trial scheduler and the search algorithm."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from lf_ray.errors import ConfigError

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import SearchAlgorithm, Searcher

    from lf_ray.config.tune_args import ParamSpec, TuneSpec

TIME_ATTR = "training_iteration"
"""Schedulers count a trial's progress in reports; a trial reports at each checkpoint save."""

ASHA_MAX_T = 100_000
"""ASHA's default `max_t` in reports: far beyond any run, so trials end when training does, not at a rung."""

_SEARCH_PACKAGES = {"optuna": "optuna", "hyperopt": "hyperopt"}


def to_distribution(param: ParamSpec) -> Any:
    """One searched key as a Ray Tune domain (`tune.loguniform(low, high)`, `tune.grid_search([...])`, ...)."""
    from ray import tune

    if param.distribution == "grid":
        return tune.grid_search(list(param.values))
    if param.distribution == "choice":
        return tune.choice(list(param.values))
    low, high = param.values
    return {"loguniform": tune.loguniform, "uniform": tune.uniform, "randint": tune.randint}[param.distribution](
        low, high
    )


def build_param_space(spec: TuneSpec) -> dict[str, Any]:
    """`{train key: domain}` for the Tuner; each trial's config is the sampled values, keyed like the config."""
    return {param.key: to_distribution(param) for param in spec.param_space}


def build_scheduler(spec: TuneSpec) -> TrialScheduler:
    """fifo runs every trial to the end; asha stops the weak ones early; pbt clones the strong ones' weights
    and perturbs their hyperparameters (over the sampled keys of `param_space`)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    options = {"time_attr": TIME_ATTR, **spec.scheduler_options}
    if spec.scheduler == "asha":
        # Ray's default max_t (100 reports) would stop every trial of a long run; the run's own end is the limit
        options.setdefault("max_t", ASHA_MAX_T)
        return ASHAScheduler(**options)
    if spec.scheduler == "pbt":
        mutations = {p.key: to_distribution(p) for p in spec.param_space if p.distribution != "grid"}
        options.setdefault("perturbation_interval", 1)
        return PopulationBasedTraining(hyperparam_mutations=mutations, **options)
    return FIFOScheduler()


def build_search_alg(spec: TuneSpec, concurrency: int) -> SearchAlgorithm | Searcher:
    """random (Ray's variant generator, grid included); optuna or hyperopt when their package is installed."""
    if spec.search_alg == "random":
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(random_state=spec.seed, max_concurrent=concurrency)
    package = _SEARCH_PACKAGES[spec.search_alg]
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"`tune.search_alg: {spec.search_alg}` needs the `{package}` package, which is not installed; "
            f"`pip install {package}` on every node (or in the job's runtime_env), or use `search_alg: random`"
        )
    from ray.tune.search import ConcurrencyLimiter

    if spec.search_alg == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        searcher: Searcher = OptunaSearch(seed=spec.seed)
    else:
        from ray.tune.search.hyperopt import HyperOptSearch

        searcher = HyperOptSearch(random_state_seed=spec.seed)
    return ConcurrencyLimiter(searcher, max_concurrent=concurrency)
