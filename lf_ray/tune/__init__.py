"""The tune step: Ray Tune sweeps of train trials (search space, concurrency fitting, trials, results).

    from lf_ray.tune import run_tune
    result = run_tune(cfg)            # cfg: a train config with a `tune:` section
    result.best_output_dir            # the best trial's adapter or model: the step's artifact

Importing this package is cheap: Ray is imported when a sweep runs.
"""

from lf_ray.tune.runner import TuneResult, run_tune, sweep_name, tune_spec

__all__ = ["TuneResult", "run_tune", "sweep_name", "tune_spec"]
