"""Plan a pipeline run: each step's whole config, fingerprint, artifact folder and whether it is cached. No Ray.

A step's config is layered, later layers winning: the pipeline's `defaults` < what its inputs hand it (a train
step gets its preprocess step's data keys and dataset; eval / export / serve get the trained model's location
and template) < its own `with` < the folders the pipeline assigns (output_dir, tokenized_path, export_dir,
save_dir). The layered config passes the same rules as the step's CLI command.

The fingerprint hashes the config, the inputs' fingerprints, the data files' contents and lf-ray's version;
the artifact folder is `<storage_path>/<name>/steps/<step id>/<fingerprint[:12]>`, so a finished folder with the
same fingerprint is reused and a changed step (and everything after it) gets a new folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_ray import __version__
from lf_ray.artifacts import fingerprint, read_manifest
from lf_ray.constants import DATASET_EVAL_DIR
from lf_ray.errors import ConfigError
from lf_ray.pipeline.spec import MODEL_STEPS, PipelineSpec, StepSpec

STEPS_DIR = "steps"
TUNE_BEST_DIR = "best"
RAY_TRAIN_DIR = "ray_train"
OUTPUT_SUBDIR = {"preprocess": "dataset", "train": "model", "tune": "model", "eval": "results", "export": "model"}
MANAGED_KEYS = {
    "preprocess": ("tokenized_path",),
    "train": ("output_dir",),
    "tune": ("output_dir",),
    "eval": ("save_dir",),
    "export": ("export_dir",),
    "serve": (),
}
"""Keys the pipeline sets to the step's artifact folder; a spec that sets them is refused."""

RENDER_KEYS = ("template", "default_system", "tool_format", "enable_thinking", "cutoff_len", "dataset_dir")
"""Keys a model's consumers (eval, export, serve) inherit from the step that trained it: prompts are rendered
exactly as in training."""

DEFAULT_STEP_CPUS = {"preprocess": 0, "train": 0, "tune": 0, "eval": 0, "export": 1, "serve": 0}
"""A step that launches its own Ray work (Ray Data, Train, Tune, Serve) holds no CPU itself, or it could starve
the workers it starts on a small cluster; export computes in its own task."""

_REFERENCE = re.compile(r"\$\{steps\.([A-Za-z][\w-]*)\.outputs\.(\w+)\}")


@dataclass
class StepPlan:
    id: str
    uses: str
    needs: tuple[str, ...]
    config: dict[str, Any]  # the layered config's non-default keys: what the step runs with
    fingerprint: str
    artifact_dir: Path
    outputs: dict[str, Any]  # artifact name -> path (or list of paths), known before the step runs
    resources: dict[str, float]
    input_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # need id -> its outputs
    input_fingerprints: dict[str, str] = field(default_factory=dict)
    cached: bool = False
    forced: bool = False  # re-run although cached (--from / --only)
    manifest: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class PipelinePlan:
    spec: PipelineSpec
    root: Path  # <storage_path>/<name>
    steps: dict[str, StepPlan]  # in execution order

    @property
    def to_run(self) -> list[StepPlan]:
        return [step for step in self.steps.values() if step.forced or not step.cached]


def pipeline_root(spec: PipelineSpec) -> Path:
    if "://" in spec.storage_path:
        raise ConfigError(
            f"{spec.where}: `storage_path: {spec.storage_path}` is a URI, but pipeline artifacts are folders that "
            "every step reads directly. Fix: use a local or NFS path shared by the cluster's nodes, and keep "
            "training checkpoints on object storage with `ray_storage_path: s3://...` in `defaults`."
        )
    return Path(spec.storage_path).expanduser().resolve() / spec.name


def _resolve_references(value: Any, step: StepSpec, planned: Mapping[str, StepPlan]) -> Any:
    """`${steps.<id>.outputs.<name>}` → that output's path; the step must list `<id>` in `needs`."""
    if isinstance(value, dict):
        return {key: _resolve_references(item, step, planned) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, step, planned) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        source, name = match.groups()
        if source not in step.needs:
            raise ConfigError(f"step `{step.id}` refers to `{match.group(0)}`: add `{source}` to its `needs`")
        outputs = planned[source].outputs
        if name not in outputs:
            raise ConfigError(
                f"step `{step.id}` refers to `{match.group(0)}`, but `{source}` has no output `{name}`; "
                f"its outputs are {', '.join(sorted(outputs))}"
            )
        return str(outputs[name])

    return _REFERENCE.sub(substitute, value)


def _inherited_stage(spec: PipelineSpec, step: StepSpec) -> dict[str, Any]:
    """A preprocess step without `stage` takes the one its train / tune consumers agree on (sft by default)."""
    if step.uses != "preprocess" or "stage" in step.config or "stage" in spec.defaults:
        return {}
    stages = {
        consumer.config.get("stage", "sft")
        for consumer in spec.steps
        if step.id in consumer.needs and consumer.uses in MODEL_STEPS
    }
    return {"stage": stages.pop()} if len(stages) == 1 else {}


def _model_location(producer: StepPlan) -> dict[str, Any]:
    """What a consumer loads: the base + the adapter chain of a LoRA run, else the trained weights."""
    layer = {"model_name_or_path": producer.outputs["base_model"], "adapter_name_or_path": producer.outputs["adapters"]}
    layer["finetuning_type"] = producer.config.get("finetuning_type", "lora")
    if not layer["adapter_name_or_path"]:
        layer["adapter_name_or_path"] = None
    return layer


def _input_layers(step: StepSpec, spec: PipelineSpec, planned: Mapping[str, StepPlan]) -> list[tuple[str, dict]]:
    layers = []
    for need in step.needs:
        producer = planned[need]
        label = f"what step `{need}` hands to `{step.id}`"
        if producer.uses == "preprocess" and step.uses in MODEL_STEPS:
            data_keys = {**_inherited_stage(spec, spec.step(need)), **spec.step(need).config}
            layers.append((label, {**data_keys, "tokenized_path": producer.outputs["dataset"]}))
        elif producer.uses in MODEL_STEPS:
            inherited = {k: producer.config[k] for k in RENDER_KEYS if k in producer.config}
            if step.uses in MODEL_STEPS:  # continue training: keep the stage's data settings out of it
                inherited = {}
            layers.append((label, {**inherited, **_model_location(producer)}))
        elif producer.uses == "export":
            inherited = {k: producer.config[k] for k in RENDER_KEYS if k in producer.config}
            location = {"model_name_or_path": producer.outputs["model"], "adapter_name_or_path": None}
            layers.append((label, {**inherited, **location}))
    return layers


def _outputs(step: StepSpec, artifact: Path, config: Mapping[str, Any]) -> dict[str, Any]:
    main = artifact / OUTPUT_SUBDIR.get(step.uses, "")
    if step.uses == "preprocess":
        return {"dataset": str(main)}
    if step.uses in MODEL_STEPS:
        if step.uses == "tune":  # the sweep keeps every trial; its best one is the model
            main = main / TUNE_BEST_DIR
        adapters: list[str] = []
        base = str(main)
        if config.get("finetuning_type", "lora") == "lora":
            upstream = list(config.get("adapter_name_or_path") or [])
            kept = upstream if config.get("create_new_adapter") else upstream[:-1]
            adapters, base = [*kept, str(main)], config["model_name_or_path"]
        outputs = {"model": str(main), "base_model": base, "adapters": adapters}
        if config.get("tokenized_path"):
            outputs["dataset"] = config["tokenized_path"]
        return outputs
    if step.uses == "eval":
        return {"results": str(main), "predictions": str(main / "generated_predictions.jsonl")}
    if step.uses == "export":
        return {"model": str(main)}
    return {"endpoint": str(artifact / "endpoint.json")}


def plan_step(step: StepSpec, spec: PipelineSpec, root: Path, planned: Mapping[str, StepPlan]) -> StepPlan:
    from lf_ray.config import load_layers, resolve_defaults, validate_config

    own = _resolve_references(step.config, step, planned)
    for key in MANAGED_KEYS[step.uses]:
        if key in own or key in spec.defaults:
            raise ConfigError(
                f"step `{step.id}` sets `{key}`, but in a pipeline the step's artifact folder is its {key}; "
                f"remove `{key}` (the folder is under {root / STEPS_DIR / step.id})"
            )
    layers = [("the pipeline's defaults", dict(spec.defaults)), *_input_layers(step, spec, planned)]
    layers.append((f"step `{step.id}` `with`", {**_inherited_stage(spec, step), **own}))
    draft = load_layers(layers, f"step `{step.id}` of {spec.where}")  # the managed folders need the fingerprint
    upstream = {need: planned[need].fingerprint for need in step.needs}
    digest = fingerprint(
        {"uses": step.uses, "config": draft.to_dict(non_default_only=True), "inputs": upstream, "lf_ray": __version__}
        | _data_identity(draft)
    )
    artifact = root / STEPS_DIR / step.id / digest[:12]
    managed = {key: str(artifact / OUTPUT_SUBDIR[step.uses]) for key in MANAGED_KEYS[step.uses]}
    if step.uses in MODEL_STEPS and "ray_storage_path" not in own and "ray_storage_path" not in spec.defaults:
        managed["ray_storage_path"] = str(root / RAY_TRAIN_DIR)
    cfg = load_layers([*layers, ("the pipeline's folders", managed)], f"step `{step.id}` of {spec.where}")
    cfg.source = f"step `{step.id}` of {spec.where}"
    cfg = resolve_defaults(cfg)
    validate_config(cfg)
    _check_step(step.uses, cfg, planned, step.needs)
    config = cfg.to_dict(non_default_only=True)
    manifest = read_manifest(artifact)
    finished = bool(manifest and manifest.get("status") == "complete" and manifest.get("fingerprint") == digest)
    cached = finished and step.uses != "serve"  # an endpoint does not outlive its cluster: deploy it every run
    resources = {"CPU": float(DEFAULT_STEP_CPUS[step.uses]), **(step.resources or {})}
    return StepPlan(
        id=step.id,
        uses=step.uses,
        needs=step.needs,
        config=config,
        fingerprint=digest,
        artifact_dir=artifact,
        outputs=_outputs(step, artifact, config),
        resources=resources,
        input_outputs={need: planned[need].outputs for need in step.needs},
        input_fingerprints=upstream,
        cached=cached,
        manifest=manifest if cached else None,
    )


def _check_step(uses: str, cfg: Any, planned: Mapping[str, StepPlan], needs: tuple[str, ...]) -> None:
    """The checks the step's own command makes before it loads anything."""
    if uses in MODEL_STEPS:
        from lf_ray.train.launcher import check_trainable

        check_trainable(cfg)
    elif uses == "export":
        from lf_ray.export.merge import check_export_config

        check_export_config(cfg)
    elif uses == "eval":
        from lf_ray.evaluate.evaluator import plan_eval

        datasets = [planned[need].outputs.get("dataset") for need in needs]
        split = next((Path(path) / DATASET_EVAL_DIR for path in datasets if path), None)
        plan_eval(cfg, eval_split=split)


def _data_identity(cfg: Any) -> dict[str, Any]:
    """The data files' contents and the tokenizer, when the step reads datasets (edits invalidate the cache)."""
    if not (cfg.data.dataset or cfg.data.eval_dataset):
        return {}
    from lf_ray.data.preprocess import plan_preprocess

    return {"data": plan_preprocess(cfg).inputs}


def plan_pipeline(spec: PipelineSpec, *, from_step: str | None = None, only_step: str | None = None) -> PipelinePlan:
    """Every step planned in execution order; `from_step` re-runs it and its descendants, `only_step` it alone."""
    from lf_ray.pipeline.steps import STEP_RUNNERS

    root = pipeline_root(spec)
    missing = sorted({step.uses for step in spec.steps} - set(STEP_RUNNERS))
    if missing:
        raise ConfigError(
            f"{spec.where} uses step type(s) {', '.join(missing)}, which this lf-ray version cannot run yet; "
            f"available: {', '.join(STEP_RUNNERS)}"
        )
    planned: dict[str, StepPlan] = {}
    problems = []
    for step_id in spec.order():
        step = spec.step(step_id)
        if any(need not in planned for need in step.needs):
            continue  # an input failed to plan: its problem is already listed
        try:
            planned[step_id] = plan_step(step, spec, root, planned)
        except ConfigError as err:
            problems.append(str(err))
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
    """A train step must tokenize its data exactly as its preprocess step did, or it would rebuild (and
    overwrite) that artifact: refuse data keys that differ."""
    from lf_ray.config import build_config
    from lf_ray.data.preprocess import plan_preprocess

    for step in plan.steps.values():
        producer = next((plan.steps[n] for n in step.needs if plan.steps[n].uses == "preprocess"), None)
        if producer is None or step.uses not in MODEL_STEPS:
            continue
        ours = _flat(plan_preprocess(build_config(step.config)).inputs)
        theirs = _flat(plan_preprocess(build_config(producer.config)).inputs)
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if differ:
            raise ConfigError(
                f"step `{step.id}` would tokenize its data differently from `{producer.id}` ({', '.join(differ)} "
                f"differ: {[ours.get(k) for k in differ]} vs {[theirs.get(k) for k in differ]}). Fix: set data keys "
                f"(and `seed`) on the preprocess step or in `defaults`, not on `{step.id}`"
            )


def _flat(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """`{"data": {"cutoff_len": 8}}` → `{"cutoff_len": 8}`, so a mismatch names the key."""
    flat: dict[str, Any] = {}
    for key, value in inputs.items():
        flat.update(value if key == "data" else {key: value})
    return flat
