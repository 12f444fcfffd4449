"""Plan a pipeline run: each step's whole config, fingerprint, artifact folder and whether it is cached. No Ray.

A step's config is layered, later layers winning: the pipeline's `defaults` < what its inputs hand it (each step
kind's `handoff`: a train step gets its preprocess step's data keys and dataset; eval / export / serve get the
trained model's location and template) < its own `with` < the folders the pipeline assigns (output_dir,
tokenized_path, export_dir, save_dir). The layered config passes the same rules and checks as the step's command.

The fingerprint is the step kind's (`Step.fingerprint`: the config less its folders, the inputs' fingerprints,
the data files' contents and lf-ray's version; a preprocess step's is its tokenized dataset's), the same a single
command gives the same config (`pipeline.command`). The artifact folder is
`<storage_path>/<name>/steps/<step id>/<fingerprint[:12]>` (a local path or a URI), so a committed artifact with
the same fingerprint is reused and a changed step (and everything after it) gets a new one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lf_ray import storage
from lf_ray.artifacts import is_complete, read_manifest
from lf_ray.errors import ConfigError
from lf_ray.pipeline.spec import REFERENCE, PipelineSpec, StepSpec, read_only_needs
from lf_ray.pipeline.steps import STEPS

STEPS_DIR = "steps"
RAY_TRAIN_DIR = "ray_train"


@dataclass
class StepPlan:
    id: str
    uses: str
    needs: tuple[str, ...]
    config: dict[str, Any]  # the layered config's non-default keys: what the step runs with
    own_config: dict[str, Any]  # its `with` (references resolved, the stage it inherits): what it hands on
    fingerprint: str
    artifact: str  # a local path or a URI
    outputs: dict[str, Any]  # artifact name -> path or URI (or a list of them), known before the step runs
    resources: dict[str, float]
    input_fingerprints: dict[str, str] = field(default_factory=dict)
    cached: bool = False
    forced: bool = False  # re-run although cached (--from / --only)
    manifest: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class PipelinePlan:
    spec: PipelineSpec
    root: str  # <storage_path>/<name>: a local path or a URI; the run records go under it
    steps: dict[str, StepPlan]  # in execution order
    command: bool = False  # a single command's plan (`pipeline.command`): its artifacts are in the config's folders

    @property
    def to_run(self) -> list[StepPlan]:
        return [step for step in self.steps.values() if step.forced or not step.cached]

    def inputs_of(self, step: StepPlan) -> dict[str, StepPlan]:
        return {need: self.steps[need] for need in step.needs}


def pipeline_root(spec: PipelineSpec) -> str:
    """`<storage_path>/<name>`: an absolute local (or NFS) path, or a URI such as `s3://bucket/prefix/<name>`."""
    return storage.join(storage.resolve(spec.storage_path), spec.name)


def _resolve_references(value: Any, step: StepSpec, planned: Mapping[str, StepPlan]) -> Any:
    """`${steps.<id>.outputs.<name>}` → that output (a path, or a list of adapter paths when the reference is the
    whole value); the step must list `<id>` in `needs`."""
    if isinstance(value, dict):
        return {key: _resolve_references(item, step, planned) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, step, planned) for item in value]
    if not isinstance(value, str):
        return value

    def output(match: re.Match[str]) -> Any:
        source, name = match.groups()
        if source not in step.needs:
            raise ConfigError(f"step `{step.id}` refers to `{match.group(0)}`: add `{source}` to its `needs`")
        outputs = planned[source].outputs
        if name not in outputs:
            raise ConfigError(
                f"step `{step.id}` refers to `{match.group(0)}`, but `{source}` has no output `{name}`; "
                f"its outputs are {', '.join(sorted(outputs))}"
            )
        return outputs[name]

    whole = REFERENCE.fullmatch(value)
    if whole:  # the output itself, so a list (an adapter chain) stays a list
        return output(whole)
    return REFERENCE.sub(lambda match: str(output(match)), value)


def _inherited_stage(spec: PipelineSpec, step: StepSpec) -> dict[str, Any]:
    """A preprocess step without `stage` takes the one its train / tune consumers agree on (sft by default)."""
    if step.uses != "preprocess" or "stage" in step.config or "stage" in spec.defaults:
        return {}
    stages = {
        consumer.config.get("stage", "sft")
        for consumer in spec.steps
        if step.id in consumer.needs and STEPS[consumer.uses].makes_model
    }
    return {"stage": stages.pop()} if len(stages) == 1 else {}


def _handing_needs(step: StepSpec, planned: Mapping[str, StepPlan]) -> list[str]:
    """The needs whose artifacts `step` takes (their handoff), less the model steps it only reads an output of."""
    read_only = read_only_needs(step, {need: planned[need].uses for need in step.needs})
    return [need for need in step.needs if need not in read_only]


def _input_layers(step: StepSpec, planned: Mapping[str, StepPlan]) -> list[tuple[str, dict]]:
    consumer = STEPS[step.uses]
    layers = []
    for need in _handing_needs(step, planned):
        producer = planned[need]
        handed = STEPS[producer.uses].handoff(producer, consumer)
        if handed:
            layers.append((f"what step `{need}` hands to `{step.id}`", handed))
    return layers


def plan_step(step: StepSpec, spec: PipelineSpec, root: str, planned: Mapping[str, StepPlan]) -> StepPlan:
    from lf_ray.config import load_layers, resolve_defaults, validate_config

    kind = STEPS[step.uses]
    own = {**_inherited_stage(spec, step), **_resolve_references(step.config, step, planned)}
    for key in kind.managed_keys:
        if key in own or key in spec.defaults:
            raise ConfigError(
                f"step `{step.id}` sets `{key}`, but in a pipeline the step's artifact folder is its {key}; "
                f"remove `{key}` (the folder is under {storage.join(root, STEPS_DIR, step.id)})"
            )
    where = f"step `{step.id}` of {spec.where}"
    layers = [("the pipeline's defaults", dict(spec.defaults)), *_input_layers(step, planned)]
    layers.append((f"step `{step.id}` `with`", own))
    draft = resolve_defaults(load_layers(layers, where))  # the managed folders need the fingerprint
    upstream = {need: planned[need].fingerprint for need in step.needs}
    handing = _handing_needs(step, planned)
    inputs = {  # by kind, as before read-only inputs existed; a read-only one by its id too
        planned[need].uses if need in handing else f"{planned[need].uses}:{need}": planned[need].fingerprint
        for need in step.needs
    }
    digest = kind.fingerprint(draft, inputs)
    artifact = storage.join(root, STEPS_DIR, step.id, digest[:12])
    managed = dict.fromkeys(kind.managed_keys, kind.main(artifact))
    if kind.makes_model and "ray_storage_path" not in own and "ray_storage_path" not in spec.defaults:
        managed["ray_storage_path"] = storage.join(root, RAY_TRAIN_DIR)
    cfg = load_layers([*layers, ("the pipeline's folders", managed)], where)
    cfg.source = where
    cfg = resolve_defaults(cfg)
    validate_config(cfg)
    inputs = {need: planned[need] for need in step.needs}
    kind.check(cfg, inputs)
    config = cfg.to_dict(non_default_only=True)
    manifest = read_manifest(artifact)
    cached = kind.cacheable and is_complete(manifest, digest)
    return StepPlan(
        id=step.id,
        uses=step.uses,
        needs=step.needs,
        config=config,
        own_config=own,
        fingerprint=digest,
        artifact=artifact,
        outputs=kind.outputs(kind.main(artifact), config),
        resources={"CPU": kind.default_cpus, **(step.resources or {})},
        input_fingerprints=upstream,
        cached=cached,
        manifest=manifest if cached else None,
    )


def plan_pipeline(spec: PipelineSpec, *, from_step: str | None = None, only_step: str | None = None) -> PipelinePlan:
    """Every step planned in execution order; `from_step` re-runs it and its descendants, `only_step` it alone."""
    root = pipeline_root(spec)
    # a bucket that is missing, unreachable or refuses the credentials is named now, before any step runs
    storage.check_access(root, what=f"{spec.where}'s storage_path", must_exist=False)
    planned: dict[str, StepPlan] = {}
    problems = []
    for step_id in spec.order():
        step = spec.step(step_id)
        if any(need not in planned for need in step.needs):
            continue  # an input failed to plan: its problem is already listed
        try:
            planned[step_id] = plan_step(step, spec, root, planned)
        except ConfigError as err:
            named = str(err).startswith(f"step `{step_id}`")
            problems.append(str(err) if named else f"step `{step_id}` ({step.uses}): {err}")
    if problems:
        raise ConfigError(f"{spec.where} has invalid steps:\n" + "\n".join(f"  - {p}" for p in problems))
    plan = PipelinePlan(spec, root, planned)
    _apply_forcing(plan, from_step, only_step)
    _check_preprocess_agreement(plan)
    return plan


def _apply_forcing(plan: PipelinePlan, from_step: str | None, only_step: str | None) -> None:
    if from_step and only_step:
        raise ConfigError("give either --from or --only, not both")
    if from_step:
        for step_id in plan.spec.descendants(plan.spec.step(from_step).id):
            plan.steps[step_id].forced = True
    if only_step:
        target = plan.steps[plan.spec.step(only_step).id]
        missing = [need for need in target.needs if not plan.steps[need].cached]
        if missing:
            raise ConfigError(
                f"--only {only_step}: its inputs {', '.join(missing)} have no finished artifact for this config; "
                f"run the pipeline (or --from {missing[0]}) first"
            )
        for step in plan.steps.values():
            step.cached, step.forced = step.id != target.id, step.id == target.id


def _check_preprocess_agreement(plan: PipelinePlan) -> None:
    """A train step trains on its preprocess step's artifact, with its own config's data keys deciding the rest
    (cutoff_len is TRL's max_length): refuse data keys that differ from how the artifact was tokenized."""
    from lf_ray.config import build_config
    from lf_ray.data.preprocess import preprocess_settings

    for step in plan.steps.values():
        producer = next((plan.steps[n] for n in step.needs if plan.steps[n].uses == "preprocess"), None)
        if producer is None or not STEPS[step.uses].makes_model:
            continue
        ours = preprocess_settings(build_config(step.config))
        theirs = preprocess_settings(build_config(producer.config))
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if differ:
            raise ConfigError(
                f"step `{step.id}` would tokenize its data differently from `{producer.id}` ({', '.join(differ)} "
                f"differ: {[ours.get(k) for k in differ]} vs {[theirs.get(k) for k in differ]}). Fix: set data keys "
                f"(and `seed`) on the preprocess step or in `defaults`, not on `{step.id}`"
            )
