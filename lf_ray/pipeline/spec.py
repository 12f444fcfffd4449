"""A pipeline spec: YAML (or the `Pipeline` builder) → a validated graph of steps. Pure: no Ray, no models.

    # lf-ray run pipelines/sft_lora.yaml
    name: sft_lora
    storage_path: saves/pipelines         # local dir, NFS or s3://
    defaults: {model_name_or_path: builtin:tiny-llama, template: llama3, finetuning_type: lora}
    steps:
      - id: data
        uses: preprocess
        with: {dataset_dir: builtin, dataset: identity, cutoff_len: 256}
      - id: sft
        uses: train
        needs: [data]
        with: {stage: sft, max_steps: 20}
        resources: {CPU: 0}
      - {id: export, uses: export, needs: [sft]}

The graph is checked here (ids, step types, `needs`, cycles, which inputs each step type accepts);
every step's LLaMA-Factory config is checked by `pipeline.plan`, with the same rules as its CLI command.
"""

from __future__ import annotations

import difflib
import graphlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lf_ray.errors import ConfigError
from lf_ray.pipeline.steps import STEPS

StepKind = Literal["preprocess", "train", "tune", "eval", "export", "serve"]
"""The names of `pipeline.steps.STEPS`, for type hints."""

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_TOP_KEYS = ("name", "storage_path", "defaults", "steps", "description")
_STEP_KEYS = ("id", "uses", "needs", "with", "resources")
REFERENCE = re.compile(r"\$\{steps\.([A-Za-z][\w-]*)\.outputs\.(\w+)\}")
"""`${steps.<id>.outputs.<name>}` in a step's `with`: that output of a step it needs."""
DEFAULT_STORAGE = "saves/pipelines"


@dataclass(frozen=True)
class StepSpec:
    """One node: its id, step type, the ids it depends on, its config (LF keys) and Ray resources."""

    id: str
    uses: str
    needs: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] | None = None


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    steps: tuple[StepSpec, ...]
    storage_path: str = DEFAULT_STORAGE
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # the YAML file, for messages and the run record

    def step(self, step_id: str) -> StepSpec:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise ConfigError(f"{self.where}: there is no step `{step_id}`{_suggest(step_id, self.ids)}")

    @property
    def ids(self) -> list[str]:
        return [step.id for step in self.steps]

    @property
    def where(self) -> str:
        return f"pipeline `{self.name}`" + (f" ({self.source})" if self.source else "")

    def order(self) -> list[str]:
        """Step ids in an order where every step comes after what it needs (ties keep the file's order)."""
        sorter = graphlib.TopologicalSorter({step.id: step.needs for step in self.steps})
        sorter.prepare()
        position = {step_id: index for index, step_id in enumerate(self.ids)}
        ordered: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            ordered.extend(ready)
            sorter.done(*ready)
        return ordered

    def descendants(self, step_id: str) -> set[str]:
        """`step_id` and every step that depends on it, directly or not."""
        found, frontier = {step_id}, [step_id]
        while frontier:
            current = frontier.pop()
            for step in self.steps:
                if current in step.needs and step.id not in found:
                    found.add(step.id)
                    frontier.append(step.id)
        return found


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def _as_mapping(value: Any, what: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: `{what}` must be a mapping of keys to values, got {type(value).__name__} {value!r}"
        )
    return dict(value)


def _parse_step(raw: Any, index: int, where: str) -> StepSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: step #{index + 1} must be a mapping with `id` and `uses`, got {raw!r}")
    label = f"{where}, step #{index + 1} (`{raw.get('id', '?')}`)"
    unknown = [key for key in raw if key not in _STEP_KEYS]
    if unknown:
        raise ConfigError(
            f"{label}: unknown key `{unknown[0]}`{_suggest(str(unknown[0]), _STEP_KEYS)}; a step has "
            f"{', '.join(_STEP_KEYS)} (its LLaMA-Factory keys go under `with`)"
        )
    step_id, uses = raw.get("id"), raw.get("uses")
    if not isinstance(step_id, str) or not _ID.match(step_id):
        raise ConfigError(
            f"{label}: `id` must be a name of letters, digits, `_` or `-` starting with a letter, got {step_id!r}"
        )
    if uses not in STEPS:
        raise ConfigError(
            f"{label}: `uses: {uses}` is not a step type{_suggest(str(uses), STEPS)}; use one of {', '.join(STEPS)}"
        )
    needs = raw.get("needs") or []
    if isinstance(needs, str):
        needs = [needs]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise ConfigError(f"{label}: `needs` must be a list of step ids, got {needs!r}")
    resources = _as_mapping(raw.get("resources"), "resources", label) or None
    if resources and not all(isinstance(v, (int, float)) and v >= 0 for v in resources.values()):
        raise ConfigError(f"{label}: `resources` must map resource names to non-negative numbers, got {resources!r}")
    return StepSpec(step_id, uses, tuple(needs), _as_mapping(raw.get("with"), "with", label), resources)


def parse_pipeline(raw: Any, source: str | None = None) -> PipelineSpec:
    """A PipelineSpec from the YAML's data, with the graph validated (every problem listed at once)."""
    where = f"pipeline {source}" if source else "the pipeline"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with `name` and `steps`, got {type(raw).__name__}")
    unknown = [key for key in raw if key not in _TOP_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key `{unknown[0]}`{_suggest(str(unknown[0]), _TOP_KEYS)}; "
            f"a pipeline has {', '.join(_TOP_KEYS)}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _ID.match(name):
        raise ConfigError(f"{where}: `name` must be a name of letters, digits, `_` or `-`, got {name!r}")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ConfigError(f"{where}: `steps` must be a non-empty list of steps, got {steps_raw!r}")
    storage = raw.get("storage_path") or DEFAULT_STORAGE
    spec = PipelineSpec(
        name=name,
        steps=tuple(_parse_step(step, i, where) for i, step in enumerate(steps_raw)),
        storage_path=str(storage),
        defaults=_as_mapping(raw.get("defaults"), "defaults", where),
        source=source,
    )
    validate_graph(spec)
    return spec


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline YAML."""
    from lf_ray.config import read_config_file

    return parse_pipeline(read_config_file(path), source=str(path))


def graph_problems(spec: PipelineSpec) -> list[str]:
    """Duplicate ids, unknown or self `needs`, inputs a step type cannot take, and cycles."""
    problems: list[str] = []
    seen: set[str] = set()
    for step in spec.steps:
        if step.id in seen:
            problems.append(f"step id `{step.id}` is used twice; give each step its own id")
        seen.add(step.id)
    kinds = {step.id: step.uses for step in spec.steps}
    for step in spec.steps:
        for need in step.needs:
            if need == step.id:
                problems.append(f"step `{step.id}` needs itself; remove `{need}` from its `needs`")
            elif need not in kinds:
                problems.append(f"step `{step.id}` needs `{need}`, which is not a step{_suggest(need, kinds)}")
        problems.extend(_input_problems(step, kinds))
    if not problems:
        try:
            graphlib.TopologicalSorter({step.id: step.needs for step in spec.steps}).prepare()
        except graphlib.CycleError as err:
            cycle = " -> ".join(err.args[1])
            problems.append(f"the steps' `needs` form a cycle: {cycle}; a step can only need steps before it")
    return problems


def referenced_steps(value: Any) -> set[str]:
    """The ids of the steps whose outputs `value` (a step's `with`) refers to."""
    if isinstance(value, dict):
        return set().union(*(referenced_steps(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced_steps(item) for item in value))
    return {match.group(1) for match in REFERENCE.finditer(value)} if isinstance(value, str) else set()


def read_only_needs(step: StepSpec, kinds: Mapping[str, str]) -> set[str]:
    """Model steps that `step` only reads an output of while it takes its model from another one (a grpo step's
    `reward_model: ${steps.rm.outputs.model}` beside the sft step it trains on): they hand it nothing."""
    models = [need for need in step.needs if need in kinds and STEPS[kinds[need]].makes_model]
    referenced = referenced_steps(step.config)
    handing = [need for need in models if need not in referenced]
    return set(models) - set(handing) if len(models) > 1 and len(handing) == 1 else set()


def _input_problems(step: StepSpec, kinds: Mapping[str, str]) -> list[str]:
    accepted = STEPS[step.uses].accepts
    problems = []
    used: dict[str, str] = {}
    read_only = read_only_needs(step, kinds)
    for need in step.needs:
        kind = kinds.get(need)
        if kind is None or need == step.id or need in read_only:
            continue
        group = "model" if STEPS[kind].makes_model else kind
        if kind not in accepted:
            problems.append(
                f"step `{step.id}` ({step.uses}) cannot take the artifact of `{need}` ({kind}); "
                f"a {step.uses} step takes {', '.join(accepted) or 'no inputs'}"
            )
        elif group in used:
            problems.append(
                f"step `{step.id}` needs two {group} steps (`{used[group]}` and `{need}`); keep one, or refer to "
                f"an output of the other in `with` (e.g. `reward_model: ${{steps.{need}.outputs.model}}`), which "
                "it then only reads"
            )
        used[group] = need
    return problems


def validate_graph(spec: PipelineSpec) -> None:
    problems = graph_problems(spec)
    if problems:
        raise ConfigError(f"{spec.where} is not a valid graph:\n" + "\n".join(f"  - {p}" for p in problems))


class Pipeline:
    """Build the same graph in Python:

    p = Pipeline("sft", defaults={"model_name_or_path": "builtin:tiny-llama", "template": "llama3"})
    data = p.step("data", "preprocess", dataset="identity", dataset_dir="builtin")
    sft = p.step("sft", "train", needs=[data], stage="sft", finetuning_type="lora")
    p.step("export", "export", needs=[sft])
    run_pipeline(p.spec())
    """

    def __init__(self, name: str, *, storage_path: str = DEFAULT_STORAGE, defaults: Mapping[str, Any] | None = None):
        self.name, self.storage_path, self.defaults = name, storage_path, dict(defaults or {})
        self._steps: list[dict[str, Any]] = []

    def step(
        self,
        step_id: str,
        uses: StepKind,
        *,
        needs: Sequence[str] = (),
        resources: Mapping[str, float] | None = None,
        **config: Any,
    ) -> str:
        """Add a step; returns its id, to pass in a later step's `needs`."""
        self._steps.append({"id": step_id, "uses": uses, "needs": list(needs), "with": config, "resources": resources})
        return step_id

    def spec(self) -> PipelineSpec:
        raw = {"name": self.name, "storage_path": self.storage_path, "defaults": self.defaults, "steps": self._steps}
        return parse_pipeline(raw)
