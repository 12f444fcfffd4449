"""The `tune:` section: parsed into a TuneSpec, or rejected with the key, the value and the fix."""

from __future__ import annotations

import pytest

from lf_ray.config import prepare_config
from lf_ray.config.schema import all_keys
from lf_ray.config.tune_args import parse_tune_spec
from lf_ray.errors import ConfigError

BASE = [
    "model_name_or_path=builtin:tiny-llama",
    "dataset_dir=builtin",
    "dataset=identity",
    "output_dir=out/tune",
    "val_size=0.25",
    "eval_strategy=steps",
    "eval_steps=2",
    "save_steps=4",
]
SPACE = {"learning_rate": {"loguniform": [1e-4, 1e-2]}, "lora_rank": {"choice": [4, 8]}}


def _spec(**section):
    return parse_tune_spec({"param_space": SPACE, **section}, all_keys())


def _problems(**section) -> str:
    spec, problems = _spec(**section)
    assert spec is None
    return "\n".join(problems)


def test_a_full_section_parses_with_coerced_values():
    spec, problems = parse_tune_spec(
        {
            "param_space": {
                "learning_rate": {"loguniform": ["1e-4", "1e-2"]},  # YAML 1.1 leaves these as strings
                "lora_rank": {"grid": [4, 8, 16]},
                "lora_dropout": {"uniform": [0.0, 0.1]},
                "per_device_train_batch_size": {"randint": [2, 5]},
            },
            "num_samples": 2,
            "scheduler": "asha",
            "scheduler_options": {"grace_period": 1},
            "metric": "eval_loss",
            "mode": "min",
            "max_concurrent_trials": 3,
            "resources_per_trial": {"driver_cpus": 0.2, "num_workers": 2, "resources_per_worker": {"GPU": 1}},
            "seed": 7,
        },
        all_keys(),
    )
    assert problems == []
    params = {p.key: (p.distribution, p.values) for p in spec.param_space}
    assert params["learning_rate"] == ("loguniform", (0.0001, 0.01))
    assert params["lora_rank"] == ("grid", (4, 8, 16))
    assert spec.num_trials == 3 * 2  # every grid value, num_samples times
    assert (spec.resources.driver_cpus, spec.resources.num_workers) == (0.2, 2)
    assert spec.resources.resources_per_worker == {"GPU": 1.0}
    assert (spec.scheduler, spec.scheduler_options, spec.max_concurrent_trials, spec.seed) == (
        "asha",
        {"grace_period": 1},
        3,
        7,
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"param_space": {"learning_rat": {"uniform": [0, 1]}}},
            "`tune.param_space.learning_rat` is not a train key; did you mean `learning_rate`?",
        ),
        (
            {"param_space": {"learning_rate": {"logunifrom": [1e-4, 1e-2]}}},
            "unknown distribution `logunifrom`; did you mean `loguniform`?",
        ),
        (
            {"param_space": {"cutoff_len": {"choice": [64, 128]}}},
            "cannot vary between trials (the dataset is tokenized once",
        ),
        (
            {"param_space": {"ray_num_workers": {"choice": [1, 2]}}},
            "set each trial's worker group in `tune.resources_per_trial`",
        ),
        ({"param_space": {"output_dir": {"choice": ["a", "b"]}}}, "each trial gets its own output folder"),
        (
            {"param_space": {"lora_rank": {"choice": [4, "eight"]}}},
            "a value in [4, 'eight'] does not fit `lora_rank` (expected int)",
        ),
        ({"param_space": {"learning_rate": {"loguniform": [0, 1e-2]}}}, "`loguniform` needs low > 0, got 0"),
        ({"param_space": {"lora_dropout": {"uniform": [0.2, 0.1]}}}, "needs low < high, got [0.2, 0.1]"),
        ({"param_space": {"lora_dropout": {"randint": [0.5, 2.5]}}}, "`randint` needs integer bounds"),
        ({"param_space": {"learning_rate": 1e-3}}, "must be one `distribution: arguments` pair, got 0.001"),
        ({"param_space": {}}, "`tune.param_space` must map train keys to distributions"),
        ({"metrik": "eval_loss"}, "unknown key `tune.metrik`; did you mean `metric`?"),
        ({"metric": "accuracy"}, "`tune.metric: 'accuracy'` is not a metric training reports"),
        ({"scheduler": "hyperband"}, "`tune.scheduler: 'hyperband'` is not one of fifo, asha, pbt"),
        (
            {"scheduler": "asha", "scheduler_options": {"grace": 1}},
            "`tune.scheduler_options.grace` is not an option of asha",
        ),
        ({"search_alg": "bayesopt"}, "`tune.search_alg: 'bayesopt'` is not one of random, optuna, hyperopt"),
        ({"num_samples": 0}, "`tune.num_samples` must be an integer >= 1, got 0"),
        ({"resources_per_trial": {"driver_cpus": 0}}, "driver_cpus` must be > 0 (Ray rejects 0)"),
        ({"resources_per_trial": {"workers": 2}}, "unknown key `tune.resources_per_trial.workers`"),
    ],
)
def test_bad_sections_name_the_key_the_value_and_the_fix(section, expected):
    assert expected in _problems(**section)


def test_cross_key_problems():
    grid = {"lora_rank": {"grid": [4, 8]}}
    assert "mutates sampled keys" in "\n".join(
        parse_tune_spec({"param_space": grid, "scheduler": "pbt"}, all_keys())[1]
    )
    optuna = parse_tune_spec({"param_space": grid, "search_alg": "optuna"}, all_keys())[1]
    assert "cannot search `grid` values; use `choice` instead" in "\n".join(optuna)


def test_the_section_is_checked_when_the_config_loads():
    cfg = prepare_config(None, [*BASE, 'tune={"param_space": {"learning_rate": {"loguniform": [1e-4, 1e-2]}}}'])
    assert cfg.tune.tune["param_space"]["learning_rate"] == {"loguniform": ["1e-4", "1e-2"]}  # kept as written
    assert cfg.get("tune") == cfg.tune.tune and cfg.group_of("tune") == "tune"
    with pytest.raises(ConfigError, match=r"2 problems in the `tune:` section:\n.*learning_rat.*\n.*logunifrom"):
        prepare_config(
            None,
            [*BASE, 'tune={"param_space": {"learning_rat": {"uniform": [0, 1]}, "lora_rank": {"logunifrom": [1, 2]}}}'],
        )


def test_the_metric_must_be_produced_by_training():
    section = 'tune={"param_space": {"learning_rate": {"loguniform": [1e-4, 1e-2]}}, "metric": "eval_loss"}'
    no_eval = [key for key in BASE if not key.startswith(("eval_", "val_size"))]
    with pytest.raises(
        ConfigError, match=r"`tune.metric: eval_loss` comes from evaluation during training, which is off"
    ):
        prepare_config(None, [*no_eval, section])
    prepare_config(None, [*no_eval, section.replace("eval_loss", "loss")])  # the training loss needs no eval set


def test_schedulers_that_compare_trials_need_the_metric_at_every_save():
    asha = 'tune={"param_space": {"learning_rate": {"loguniform": [1e-4, 1e-2]}}, "scheduler": "asha"}'
    prepare_config(None, [*BASE, asha])  # save_steps 4 is a multiple of eval_steps 2
    with pytest.raises(ConfigError, match=r"saves must follow evaluations \(got save_strategy steps, save_steps 3"):
        prepare_config(None, [*BASE, "save_steps=3", asha])
    with pytest.raises(ConfigError, match=r"`train_loss` exists only at the end; use `tune.metric: loss`"):
        prepare_config(None, [*BASE, asha.replace('"asha"', '"asha", "metric": "train_loss"')])
