"""Per-trial resources and concurrency fitted to the free resources: never more trials than fit."""

from __future__ import annotations

import pytest

from lf_ray.config import RayArguments
from lf_ray.config.schema import all_keys
from lf_ray.config.tune_args import parse_tune_spec
from lf_ray.errors import ConfigError
from lf_ray.tune.resources import plan_trials


def _spec(num_samples: int = 4, **section):
    spec, problems = parse_tune_spec(
        {"param_space": {"learning_rate": {"loguniform": [1e-4, 1e-2]}}, "num_samples": num_samples, **section},
        all_keys(),
    )
    assert not problems
    return spec


def test_two_cpus_one_worker_run_one_trial_at_a_time():
    plan = plan_trials(_spec(), RayArguments(ray_num_workers=1), {"CPU": 2.0})
    assert plan.resources_per_worker == {"CPU": 1.0}
    assert plan.per_trial == {"CPU": 1.1} and plan.concurrency == 1
    assert "concurrency: 1 trial(s) at a time; each holds {CPU: 1.1}" in plan.notes[-1]


def test_workers_shrink_so_that_one_trial_fits_a_small_machine():
    plan = plan_trials(_spec(), RayArguments(ray_num_workers=2), {"CPU": 2.0})
    assert plan.resources_per_worker == {"CPU": 0.95} and plan.concurrency == 1
    assert plan.per_trial["CPU"] == pytest.approx(2.0)
    assert "workers get 0.95 CPU each (not 1)" in plan.notes[0]


def test_concurrency_grows_with_the_cluster_and_stops_at_the_number_of_trials():
    assert plan_trials(_spec(num_samples=20), RayArguments(), {"CPU": 16.0}).concurrency == 14  # 16 // 1.1
    assert plan_trials(_spec(num_samples=3), RayArguments(), {"CPU": 16.0}).concurrency == 3


def test_gpu_clusters_give_each_worker_a_gpu_and_fit_trials_to_gpus():
    plan = plan_trials(_spec(), RayArguments(ray_num_workers=2), {"CPU": 32.0, "GPU": 4.0, "memory": 1e11})
    assert plan.resources_per_worker == {"GPU": 1.0}
    assert plan.per_trial == {"CPU": 0.1, "GPU": 2.0} and plan.concurrency == 2


def test_max_concurrent_trials_is_kept_below_the_fit_and_lowered_above_it():
    assert plan_trials(_spec(max_concurrent_trials=2), RayArguments(), {"CPU": 16.0}).concurrency == 2
    plan = plan_trials(_spec(max_concurrent_trials=4), RayArguments(), {"CPU": 2.0})
    assert plan.concurrency == 1 and "max_concurrent_trials 4 lowered to 1" in plan.notes[0]


def test_explicit_resources_win_and_a_trial_that_cannot_fit_is_a_clear_error():
    spec = _spec(resources_per_trial={"num_workers": 2, "resources_per_worker": {"CPU": 0.5}})
    plan = plan_trials(spec, RayArguments(ray_num_workers=1, resources_per_worker={"CPU": 1}), {"CPU": 2.0})
    assert (plan.num_workers, plan.resources_per_worker, plan.concurrency) == (2, {"CPU": 0.5}, 1)
    with pytest.raises(ConfigError, match=r"one trial needs \{CPU: 0.1, GPU: 1\}.*has \{CPU: 2, GPU: 0\} free"):
        plan_trials(_spec(), RayArguments(resources_per_worker={"GPU": 1}), {"CPU": 2.0, "GPU": 0.0})
