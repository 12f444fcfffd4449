"""`TuneArguments`: the `tune:` section of a sweep config, and its parsing into a checked `TuneSpec`.

A sweep config is a train config plus one nested mapping:

    tune:
      param_space:                       # any finetuning / training key
        learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
        lora_rank: {choice: [4, 8, 16]}
      num_samples: 4
      scheduler: asha                    # fifo | asha | pbt  (+ scheduler_options)
      metric: eval_loss
      mode: min

Parsing is pure (no Ray): every problem is collected and reported at once, naming the `tune.` key, the
value received and the fix. `lf_ray.tune` turns the spec into Ray Tune objects.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lf_ray.config.coercion import ValueMismatch, coerce_value

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "randint", "grid")
SCHEDULERS = ("fifo", "asha", "pbt")
SEARCH_ALGS = ("random", "optuna", "hyperopt")
SCHEDULER_OPTIONS: dict[str, tuple[str, ...]] = {
    "fifo": (),
    "asha": ("time_attr", "max_t", "grace_period", "reduction_factor", "brackets", "stop_last_trials"),
    "pbt": ("time_attr", "perturbation_interval", "burn_in_period", "quantile_fraction", "resample_probability"),
}
DEFAULT_DRIVER_CPUS = 0.1
"""CPUs held by each trial's driver (the Tune function that builds the TorchTrainer); Ray rejects 0."""

_SECTION_KEYS = (
    "param_space",
    "num_samples",
    "metric",
    "mode",
    "scheduler",
    "scheduler_options",
    "search_alg",
    "max_concurrent_trials",
    "resources_per_trial",
    "seed",
)
_RESOURCE_KEYS = ("driver_cpus", "num_workers", "resources_per_worker")
_SHARED_GROUPS = ("model", "data", "ray", "tune")
"""Keys of these groups cannot vary between trials: the dataset is tokenized once for all of them, and the
worker group of a trial is set by `resources_per_trial`."""
_FIXED_KEYS = ("output_dir", "overwrite_output_dir", "resume_from_checkpoint", "do_train")


@dataclass
class TuneArguments:
    """Arguments pertaining to a Ray Tune sweep (`lf-ray tune`)."""

    tune: dict | None = field(
        default=None,
        metadata={
            "help": "The sweep, as a mapping: param_space (key: {loguniform|uniform|randint: [low, high]} or "
            "{choice|grid: [values]}), num_samples, metric (eval_loss, loss, ...), mode (min|max), scheduler "
            "(fifo|asha|pbt), scheduler_options, search_alg (random|optuna|hyperopt), max_concurrent_trials "
            "(default: as many as fit the free resources), resources_per_trial ({driver_cpus, num_workers, "
            "resources_per_worker}), seed."
        },
    )


@dataclass(frozen=True)
class ParamSpec:
    """One searched key: its distribution and its bounds (low, high) or candidate values."""

    key: str
    distribution: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class TrialResources:
    """What one trial holds: a driver (`driver_cpus`) and a Ray Train worker group (None: the train keys)."""

    driver_cpus: float = DEFAULT_DRIVER_CPUS
    num_workers: int | None = None
    resources_per_worker: dict[str, float] | None = None


@dataclass(frozen=True)
class TuneSpec:
    """A checked `tune:` section."""

    param_space: tuple[ParamSpec, ...]
    num_samples: int = 1
    metric: str = "eval_loss"
    mode: Literal["min", "max"] = "min"
    scheduler: str = "fifo"
    scheduler_options: dict[str, Any] = field(default_factory=dict)
    search_alg: str = "random"
    max_concurrent_trials: int | None = None
    resources: TrialResources = field(default_factory=TrialResources)
    seed: int | None = None

    @property
    def num_trials(self) -> int:
        """Trials Tune will run: every grid combination, `num_samples` times each (Ray's rule)."""
        combos = 1
        for param in self.param_space:
            if param.distribution == "grid":
                combos *= len(param.values)
        return combos * self.num_samples


def parse_tune_spec(raw: Mapping[str, Any], key_specs: Mapping[str, Any]) -> tuple[TuneSpec | None, list[str]]:
    """The spec of a `tune:` mapping and the problems found (spec is None when there are any).

    `key_specs` is the config key table (`schema.all_keys()`), used to check that searched keys exist and
    that their candidate values fit the key's type.
    """
    problems: list[str] = []
    for key in raw:
        if key not in _SECTION_KEYS:
            problems.append(f"unknown key `tune.{key}`{_suggest(str(key), _SECTION_KEYS)}")
    params = _parse_param_space(raw.get("param_space"), key_specs, problems)
    options = _parse_mapping(raw.get("scheduler_options"), "scheduler_options", problems)
    scheduler = _choice(raw.get("scheduler", "fifo"), "scheduler", SCHEDULERS, problems)
    if scheduler in SCHEDULER_OPTIONS:
        for name in options:
            if name not in SCHEDULER_OPTIONS[scheduler]:
                allowed = ", ".join(SCHEDULER_OPTIONS[scheduler]) or "none"
                problems.append(f"`tune.scheduler_options.{name}` is not an option of {scheduler} (allowed: {allowed})")
    spec = TuneSpec(
        param_space=params,
        num_samples=_positive_int(raw.get("num_samples", 1), "num_samples", problems) or 1,
        metric=_metric(raw.get("metric", "eval_loss"), problems),
        mode=_choice(raw.get("mode", "min"), "mode", ("min", "max"), problems),
        scheduler=scheduler,
        scheduler_options=options,
        search_alg=_choice(raw.get("search_alg", "random"), "search_alg", SEARCH_ALGS, problems),
        max_concurrent_trials=_optional_positive_int(raw.get("max_concurrent_trials"), problems),
        resources=_parse_resources(raw.get("resources_per_trial"), problems),
        seed=_optional_int(raw.get("seed"), "seed", problems),
    )
    if spec.scheduler == "pbt" and not any(p.distribution != "grid" for p in params):
        problems.append("`tune.scheduler: pbt` mutates sampled keys: give param_space a loguniform, uniform or choice")
    if spec.search_alg != "random" and any(p.distribution == "grid" for p in params):
        problems.append(f"`tune.search_alg: {spec.search_alg}` cannot search `grid` values; use `choice` instead")
    return (None, problems) if problems else (spec, [])


def _parse_param_space(raw: Any, key_specs: Mapping[str, Any], problems: list[str]) -> tuple[ParamSpec, ...]:
    if not isinstance(raw, Mapping) or not raw:
        problems.append(
            f"`tune.param_space` must map train keys to distributions, got {raw!r}; "
            "e.g. param_space: {learning_rate: {loguniform: [1.0e-4, 1.0e-2]}}"
        )
        return ()
    params = []
    for key, dist in raw.items():
        problem = _check_searchable(str(key), key_specs)
        if problem is None:
            param, problem = _parse_distribution(str(key), dist, key_specs[key].value)
            if param is not None:
                params.append(param)
        if problem is not None:
            problems.append(problem)
    return tuple(params)


def _check_searchable(key: str, key_specs: Mapping[str, Any]) -> str | None:
    spec = key_specs.get(key)
    if spec is None:
        return f"`tune.param_space.{key}` is not a train key{_suggest(key, tuple(key_specs))}"
    if spec.group in _SHARED_GROUPS or key in _FIXED_KEYS:
        why = {
            "model": "the model and tokenizer are shared by every trial",
            "data": "the dataset is tokenized once and shared by every trial",
            "ray": "set each trial's worker group in `tune.resources_per_trial`",
            "tune": "it is the sweep itself",
        }.get(spec.group, "each trial gets its own output folder under the sweep's output_dir")
        return f"`tune.param_space.{key}` cannot vary between trials ({why}); set it outside `tune:` instead"
    return None


def _parse_distribution(key: str, dist: Any, value_spec: Any) -> tuple[ParamSpec | None, str | None]:
    where = f"`tune.param_space.{key}`"
    if not isinstance(dist, Mapping) or len(dist) != 1:
        return None, (
            f"{where} must be one `distribution: arguments` pair, got {dist!r}; "
            f"e.g. {{loguniform: [1.0e-5, 1.0e-3]}} or {{choice: [8, 16]}} (distributions: {', '.join(DISTRIBUTIONS)})"
        )
    ((name, args),) = dist.items()
    if name not in DISTRIBUTIONS:
        return None, f"{where}: unknown distribution `{name}`{_suggest(str(name), DISTRIBUTIONS)}"
    if not isinstance(args, (list, tuple)) or not args:
        return None, f"{where}: `{name}` needs a list, got {args!r}"
    try:
        values = tuple(coerce_value(value, value_spec) for value in args)
    except ValueMismatch as err:
        return None, f"{where}: a value in {list(args)!r} does not fit `{key}` ({err})"
    if name in ("choice", "grid"):
        return ParamSpec(key, name, values), None
    return _parse_range(key, name, values)


def _parse_range(key: str, name: str, values: tuple[Any, ...]) -> tuple[ParamSpec | None, str | None]:
    where = f"`tune.param_space.{key}`"
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if len(values) != 2 or not numeric:
        return None, f"{where}: `{name}` needs [low, high] numbers, got {list(values)!r}"
    low, high = values
    if not low < high:
        return None, f"{where}: `{name}` needs low < high, got [{low}, {high}]"
    if name == "loguniform" and low <= 0:
        return None, f"{where}: `loguniform` needs low > 0, got {low}; use `uniform` to include 0"
    if name == "randint" and not (isinstance(low, int) and isinstance(high, int)):
        return None, f"{where}: `randint` needs integer bounds, got [{low}, {high}] (high is exclusive)"
    return ParamSpec(key, name, (low, high)), None


def _metric(value: Any, problems: list[str]) -> str:
    text = str(value)
    if text in ("loss", "train_loss", "grad_norm", "reward") or (text.startswith("eval_") and len(text) > 5):
        return text
    if text.startswith("rewards/") and text.endswith(("/mean", "/std")):
        return text
    problems.append(
        f"`tune.metric: {value!r}` is not a metric training reports; use eval_loss (needs val_size or "
        "eval_dataset), another eval_* metric, loss (the training loss), train_loss, or with stage grpo / ppo reward "
        "(or rewards/<function>/mean)"
    )
    return "eval_loss"


def _parse_resources(raw: Any, problems: list[str]) -> TrialResources:
    if raw is None:
        return TrialResources()
    if not isinstance(raw, Mapping):
        problems.append(f"`tune.resources_per_trial` must be a mapping of {', '.join(_RESOURCE_KEYS)}, got {raw!r}")
        return TrialResources()
    for key in raw:
        if key not in _RESOURCE_KEYS:
            problems.append(f"unknown key `tune.resources_per_trial.{key}`{_suggest(str(key), _RESOURCE_KEYS)}")
    driver = raw.get("driver_cpus", DEFAULT_DRIVER_CPUS)
    if not isinstance(driver, (int, float)) or isinstance(driver, bool) or driver <= 0:
        problems.append(f"`tune.resources_per_trial.driver_cpus` must be > 0 (Ray rejects 0), got {driver!r}; try 0.1")
        driver = DEFAULT_DRIVER_CPUS
    workers = raw.get("num_workers")
    if workers is not None:
        workers = _positive_int(workers, "resources_per_trial.num_workers", problems)
    per_worker = _parse_mapping(raw.get("resources_per_worker"), "resources_per_trial.resources_per_worker", problems)
    bad = {k: v for k, v in per_worker.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0}
    if bad:
        problems.append(f"`tune.resources_per_trial.resources_per_worker` needs amounts >= 0, got {bad}")
    return TrialResources(float(driver), workers, {k: float(v) for k, v in per_worker.items()} or None)


def _parse_mapping(value: Any, name: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"`tune.{name}` must be a mapping, got {value!r}")
        return {}
    return {str(k): v for k, v in value.items()}


def _choice(value: Any, name: str, allowed: tuple[str, ...], problems: list[str]) -> Any:
    if value in allowed:
        return value
    problems.append(f"`tune.{name}: {value!r}` is not one of {', '.join(allowed)}{_suggest(str(value), allowed)}")
    return allowed[0]


def _positive_int(value: Any, name: str, problems: list[str]) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    problems.append(f"`tune.{name}` must be an integer >= 1, got {value!r}")
    return None


def _optional_positive_int(value: Any, problems: list[str]) -> int | None:
    return None if value is None else _positive_int(value, "max_concurrent_trials", problems)


def _optional_int(value: Any, name: str, problems: list[str]) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    problems.append(f"`tune.{name}` must be an integer, got {value!r}")
    return None


def _suggest(word: str, candidates: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""
