"""A TuneSpec as Ray Tune objects: domains that sample in range, schedulers, search algorithms."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, PopulationBasedTraining
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

from lf_ray.config.schema import all_keys
from lf_ray.config.tune_args import parse_tune_spec
from lf_ray.errors import ConfigError
from lf_ray.tune.space import build_param_space, build_scheduler, build_search_alg


def _spec(space=None, **section):
    spec, problems = parse_tune_spec(
        {"param_space": space or {"learning_rate": {"loguniform": [1e-4, 1e-2]}}, **section}, all_keys()
    )
    assert not problems, problems
    return spec


def test_domains_sample_inside_their_bounds():
    space = build_param_space(
        _spec(
            {
                "learning_rate": {"loguniform": [1e-4, 1e-2]},
                "lora_dropout": {"uniform": [0.0, 0.1]},
                "per_device_train_batch_size": {"randint": [2, 5]},
                "lora_rank": {"choice": [4, 8]},
                "lora_alpha": {"grid": [16, 32]},
            }
        )
    )
    rng = np.random.default_rng(0)
    lrs = space["learning_rate"].sample(size=200, random_state=rng)
    assert min(lrs) >= 1e-4 and max(lrs) <= 1e-2 and np.median(lrs) < 3e-3  # log-uniform: median near 1e-3
    assert all(0.0 <= x <= 0.1 for x in space["lora_dropout"].sample(size=50, random_state=rng))
    assert set(space["per_device_train_batch_size"].sample(size=200, random_state=rng)) == {2, 3, 4}  # high exclusive
    assert set(space["lora_rank"].sample(size=50, random_state=rng)) == {4, 8}
    assert space["lora_alpha"] == {"grid_search": [16, 32]}


def test_schedulers():
    assert isinstance(build_scheduler(_spec()), FIFOScheduler)
    asha = build_scheduler(_spec(scheduler="asha", scheduler_options={"grace_period": 2, "reduction_factor": 3}))
    assert isinstance(asha, AsyncHyperBandScheduler) and asha._time_attr == "training_iteration"
    assert asha._brackets[0].rf == 3 and asha._brackets[0]._rungs[-1][0] == 2  # the grace period is the first rung
    assert asha._max_t == 100_000  # not Ray's 100 reports, which would stop long runs at a rung
    pbt = build_scheduler(
        _spec({"learning_rate": {"loguniform": [1e-4, 1e-2]}, "lora_rank": {"grid": [4, 8]}}, scheduler="pbt")
    )
    assert isinstance(pbt, PopulationBasedTraining) and set(pbt._hyperparam_mutations) == {"learning_rate"}
    assert pbt._perturbation_interval == 1


def test_random_search_is_seeded_and_limited_to_the_concurrency():
    search = build_search_alg(_spec(seed=3), concurrency=2)
    assert isinstance(search, BasicVariantGenerator) and search.max_concurrent == 2


@pytest.mark.parametrize("name", ["optuna", "hyperopt"])
def test_optional_search_algorithms(name):
    spec = _spec(search_alg=name, seed=0)
    if importlib.util.find_spec(name) is None:
        with pytest.raises(
            ConfigError, match=rf"needs the `{name}` package, which is not installed; `pip install {name}`"
        ):
            build_search_alg(spec, concurrency=1)
    else:
        assert isinstance(build_search_alg(spec, concurrency=1), ConcurrencyLimiter)
