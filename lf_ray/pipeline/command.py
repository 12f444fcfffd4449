"""The single commands as small plans: `lf-ray train cfg.yaml` plans and runs preprocess → train with the step
kinds, fingerprints, checks, plan printer and run record of a pipeline's steps. No Ray here.

    plan = command_plan("train", cfg)     # a PipelinePlan with the steps `preprocess` and `train`
    print_plan(plan)
    result = run_here(plan)               # one step after another in this process; the record in `plan.root`

A command's artifacts are where LLaMA-Factory puts them rather than under a pipeline's storage_path (each step
kind's `command_folder`: the tokenized dataset at `tokenized_path`, else `<output_dir>/tokenized`, else lf-ray's
cache; the model in `output_dir`; eval results in `save_dir`; the export in `export_dir`). A step is reused when its
folder holds a committed manifest of its fingerprint, the fingerprint a pipeline step of the same config has; eval
and export always run (they read models by path, and a path's contents are not part of the fingerprint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lf_ray import storage
from lf_ray.artifacts import is_complete, read_manifest
from lf_ray.pipeline.plan import PipelinePlan, StepPlan
from lf_ray.pipeline.spec import PipelineSpec, StepSpec
from lf_ray.pipeline.steps import STEPS

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

COMMAND_STEPS: dict[str, tuple[str, ...]] = {
    "preprocess": ("preprocess",),
    "train": ("preprocess", "train"),
    "tune": ("preprocess", "tune"),
    "eval": ("eval",),
    "export": ("export",),
}
"""Each single command's steps, in order; every step takes the one before it."""

RUNS_FOLDER = "pipelines"


def command_root(cfg: LfRayConfig) -> str:
    """Where a command's run records go: `<ray_storage_path>/pipelines`, so `saves/pipelines` by default (what
    `lf-ray runs list` and the board read), and the object store when Ray Train's runs go there."""
    from lf_ray.train.launcher import storage_path

    return storage.join(storage_path(cfg), RUNS_FOLDER)


def command_plan(command: str, cfg: LfRayConfig) -> PipelinePlan:
    """The plan of `lf-ray <command>` for `cfg`: every step checked (one ConfigError for the first bad one),
    fingerprinted, and found cached or not."""
    config = cfg.to_dict(non_default_only=True)
    kinds = COMMAND_STEPS[command]
    specs = tuple(StepSpec(kind, kind, needs=kinds[:i][-1:], config=config) for i, kind in enumerate(kinds))
    spec = PipelineSpec(name=command, steps=specs, storage_path=command_root(cfg), source=cfg.source)
    planned: dict[str, StepPlan] = {}
    for step in specs:
        kind = STEPS[step.uses]
        inputs = {need: planned[need] for need in step.needs}
        kind.check(cfg, inputs)
        digest = kind.fingerprint(cfg, {planned[need].uses: planned[need].fingerprint for need in step.needs})
        folder = kind.command_folder(cfg)
        manifest = read_manifest(folder) if kind.command_reuses(cfg) else None
        cached = is_complete(manifest, digest)
        planned[step.id] = StepPlan(
            id=step.id,
            uses=step.uses,
            needs=step.needs,
            config=config,
            own_config=config,
            fingerprint=digest,
            artifact=folder,
            outputs=kind.outputs(folder, config),
            resources={},
            input_fingerprints={need: planned[need].fingerprint for need in step.needs},
            cached=cached,
            manifest=manifest if cached else None,
        )
    return PipelinePlan(spec, storage.join(spec.storage_path, command), planned, command=True)
