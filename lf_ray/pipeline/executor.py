"""Run a planned pipeline on Ray: one Ray task per step, chained by the ObjectRefs of their inputs.

Independent steps run at the same time (eval and export after train); each task holds the resources its step
declares (none by default for steps that start their own Ray Data / Train work, so they cannot starve it).
A step's console output goes to `<artifact>/step.log` when it ends (a failed step's to `runs/<run id>/<step>.log`,
named in the run record) and, prefixed with the step id, to the driver's console.
A step's artifact counts as finished only once its `manifest.json` is written, last and atomically; a re-run
after a crash or a kill therefore starts at the first unfinished step, and a train step resumes from its last
Ray Train checkpoint (its run keeps its name in the pipeline's `ray_train` folder).
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_ray import storage
from lf_ray.artifacts import build_manifest, now, read_manifest, write_manifest
from lf_ray.console import STEP_TASK_PREFIX
from lf_ray.constants import MANIFEST_NAME, lf_ray_home
from lf_ray.pipeline.plan import PipelinePlan, StepPlan
from lf_ray.pipeline.store import RunRecord

STEP_LOG = "step.log"
_RAY_TQDM_TOKEN = "__ray_tqdm_magic_token__"


@dataclass
class PipelineResult:
    record: RunRecord
    plan: PipelinePlan
    tracking_uri: str | None

    @property
    def ok(self) -> bool:
        return self.record.data["status"] == "complete"


class _PrefixedTee(io.TextIOBase):
    """Write every line to the step's log file and, prefixed with the step id, to the original stream."""

    def __init__(self, stream: Any, log: Any, prefix: str) -> None:
        self.stream, self.log, self.prefix = stream, log, prefix
        self.at_line_start = True

    def write(self, text: str) -> int:
        if _RAY_TQDM_TOKEN in text:  # Ray Data's progress bars: the driver decodes these lines, leave them whole
            self.stream.write(text)
            return len(text)
        self.log.write(text)
        self.log.flush()
        for piece in text.splitlines(keepends=True):
            self.stream.write((self.prefix if self.at_line_start else "") + piece)
            self.at_line_start = piece.endswith("\n")
        self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()


def failed_step_log(run_dir: str, step_id: str) -> str:
    """Where a failed step's log goes: `<root>/runs/<run id>/<step id>.log`, beside the run record."""
    return storage.join(run_dir, f"{step_id}.log")


@contextlib.contextmanager
def step_output(artifact: str, step_id: str, run_dir: str, prefix: str) -> Iterator[None]:
    """Tee the step's prints into its log, and with `prefix` to the console. The log is written locally while the
    step runs (a step may replace its folder as it commits); then it goes to `<artifact>/step.log`, or, when the
    step fails, to `<run folder>/<step id>.log` (the artifact folder stays free of what did not finish)."""
    log_path = lf_ray_home() / "logs" / f"step-{Path(run_dir).name}-{step_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    target = failed_step_log(run_dir, step_id)
    try:
        with open(log_path, "a", encoding="utf-8") as log:
            out, err = sys.stdout, sys.stderr
            sys.stdout = _PrefixedTee(out, log, prefix)
            sys.stderr = _PrefixedTee(err, log, prefix)
            try:
                yield
            except BaseException:
                log.write(traceback.format_exc())  # the log's copy; the error itself goes on to the caller
                raise
            finally:
                sys.stdout, sys.stderr = out, err
        target = storage.join(artifact, STEP_LOG)
    finally:
        storage.write_bytes(target, log_path.read_bytes())
        log_path.unlink()


def execute_step(
    step: StepPlan, inputs: dict[str, StepPlan], run_dir: str, mlflow_run_id: str | None, *upstream
) -> dict:
    """The body of a step's Ray task: `run_step`, with its console lines prefixed by the step id."""
    import ray.data

    del upstream  # only awaited: Ray starts this task once every input step has finished
    # Progress bars of steps running side by side would garble the console; each step prints its own lines.
    ray.data.DataContext.get_current().enable_progress_bars = False
    return run_step(step, inputs, run_dir, mlflow_run_id, prefix=f"[{step.id}] ")


def run_step(
    step: StepPlan, inputs: dict[str, StepPlan], run_dir: str, mlflow_run_id: str | None = None, *, prefix: str = ""
) -> dict:
    """Run one planned step in this process, then commit its artifact: its manifest, written last.

    A step kind that commits a manifest of its own into the artifact folder (a tokenized dataset, eval results
    where they are the artifact) keeps its details; the step's fields are written over them, so the folder has
    one manifest."""
    from lf_ray.config import build_config
    from lf_ray.pipeline.steps import STEPS, StepContext

    started_at, started = now(), time.perf_counter()
    storage.delete(storage.join(step.artifact, MANIFEST_NAME))  # unfinished until the new manifest lands
    with step_output(step.artifact, step.id, run_dir, prefix):
        print(f"step {step.id} ({step.uses}) started, artifact {step.artifact}", flush=True)
        cfg = build_config(step.config, source=f"step `{step.id}`")
        result = STEPS[step.uses].run(cfg, StepContext(step.id, step.artifact, inputs, mlflow_run_id))
        seconds = round(time.perf_counter() - started, 3)
        print(f"step {step.id} finished in {seconds} s", flush=True)
    manifest = build_manifest(
        step.uses,
        fingerprint=step.fingerprint,
        inputs=step.input_fingerprints,
        outputs={**step.outputs, **{k: v for k, v in result.outputs.items() if v is not None}},
        metrics=result.metrics,
        timings={"started_at": started_at, "finished_at": now(), "duration_s": seconds},
        step=step.id,
        run_id=Path(run_dir).name,
        config=step.config,
    )
    own = read_manifest(step.artifact) or {}
    for key in ("inputs", "outputs", "metrics", "timings"):
        manifest[key] = {**own.get(key, {}), **manifest[key]}
    write_manifest(step.artifact, {**own, **manifest})
    return manifest


def _root_error(err: BaseException) -> BaseException:
    """The user's error inside Ray's wrapper (a bad input on a worker reads as itself)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def _summary(err: BaseException) -> str:
    text = str(_root_error(err)).strip()
    return text.splitlines()[-1] if len(text.splitlines()) > 20 else text or type(err).__name__


def run_pipeline(plan: PipelinePlan, *, echo: Callable[[str], None] = print) -> PipelineResult:
    """Execute the steps of `plan` that are not cached, record the run, and track it in MLflow."""
    import ray

    from lf_ray.cluster import ensure_ray
    from lf_ray.tracking.lineage import PipelineLineage

    if plan.to_run:  # a fully cached run needs no cluster
        ensure_ray(plan.spec.defaults.get("ray_init_kwargs"))
    record = RunRecord.create(plan.root, plan.spec.name, plan.spec.source, _initial_steps(plan))
    lineage = PipelineLineage.start(plan.spec.name, record.run_id, {"lf_ray.root": str(plan.root)})
    record.data["mlflow"] = {"tracking_uri": lineage.uri, "run_id": lineage.parent_run_id}
    record.save()
    echo(
        f"[pipeline] run {record.run_id}: {len(plan.to_run)} of {len(plan.steps)} step(s) to run, record {record.path}"
    )

    remote = ray.remote(execute_step)
    pending: dict[Any, tuple[StepPlan, str]] = {}
    refs: dict[str, Any] = {}
    for step in plan.steps.values():
        child = lineage.start_step(
            step.id, step.uses, step.fingerprint, step.artifact, step.config, cached=step.cached and not step.forced
        )
        if step.cached and not step.forced:
            metrics = (step.manifest or {}).get("metrics", {})
            lineage.finish_step(child, status="FINISHED", metrics=metrics, outputs=step.outputs)
            record.update_step(step.id, status="cached", metrics=metrics, duration_s=0.0)
            echo(f"[pipeline] {step.id}: cached ({step.artifact})")
            continue
        options = _task_options(plan, step)
        upstream = [refs[need] for need in step.needs if need in refs]
        refs[step.id] = remote.options(**options).remote(step, plan.inputs_of(step), record.folder, child, *upstream)
        pending[refs[step.id]] = (step, child)
        record.update_step(step.id, status="submitted")
    try:
        status = _collect(pending, plan, record, lineage, echo)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (see cli.main): stop the steps, record the run as interrupted
        _interrupt(pending, record, lineage)
        raise
    record.finish(status)
    lineage.finish("FINISHED" if status == "complete" else "FAILED")
    return PipelineResult(record, plan, lineage.uri)


def _interrupt(pending: dict, record: RunRecord, lineage: Any) -> None:
    """Cancel the unfinished step tasks (force: their worker processes exit, and the Ray Train worker groups they
    own with them) and record them, and the run, as interrupted. Their artifacts stay uncommitted: a re-run redoes
    them (a train step from its last checkpoint)."""
    import ray

    for ref, (step, child) in pending.items():
        with contextlib.suppress(Exception):  # already finished, or the cluster is going away
            ray.cancel(ref, force=True)
        record.update_step(step.id, status="interrupted", finished_at=now())
        lineage.finish_step(child, status="KILLED")
    record.data["error"] = "interrupted (Ctrl-C or SIGTERM); run it again to resume"
    record.finish("interrupted")
    lineage.finish("KILLED")


def run_here(plan: PipelinePlan, *, echo: Callable[[str], None] = print) -> PipelineResult:
    """Run the steps of `plan` that are not cached one after another in this process (a single command's plan),
    recording the run like a pipeline's. Each step starts the Ray work it needs itself; one that needs none
    (preprocessing small data) starts no Ray. A step's error is raised as it is, after the record says so."""
    record = RunRecord.create(plan.root, plan.spec.name, plan.spec.source, _initial_steps(plan))
    for step in plan.steps.values():
        if step.cached and not step.forced:
            record.update_step(step.id, status="cached", metrics=(step.manifest or {}).get("metrics", {}))
            echo(f"[{plan.spec.name}] {step.id}: cached ({step.artifact})")
            continue
        record.update_step(step.id, status="running")
        try:
            manifest = run_step(step, plan.inputs_of(step), record.folder)
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            log = failed_step_log(record.folder, step.id)
            record.update_step(step.id, status=status, error=_summary(err), log=log, finished_at=now())
            record.data["error"] = f"step `{step.id}` {status}: {_summary(err)}"
            record.finish(status)
            raise
        record.update_step(step.id, status="complete", metrics=manifest["metrics"], outputs=manifest["outputs"],
                           **manifest["timings"])  # fmt: skip
    record.finish("complete")
    return PipelineResult(record, plan, None)


def _task_options(plan: PipelinePlan, step: StepPlan) -> dict[str, Any]:
    resources = dict(step.resources)
    options: dict[str, Any] = {"name": f"{STEP_TASK_PREFIX}{plan.spec.name}.{step.id}", "max_retries": 0}
    options["num_cpus"] = resources.pop("CPU", 0)
    options["num_gpus"] = resources.pop("GPU", 0)
    if "memory" in resources:
        options["memory"] = resources.pop("memory")
    if resources:
        options["resources"] = resources
    return options


def _collect(pending: dict, plan: PipelinePlan, record: RunRecord, lineage: Any, echo: Callable[[str], None]) -> str:
    """Wait for the step tasks in completion order, recording each; a failure skips what depends on it."""
    import ray

    failed: dict[str, str] = {}
    ref_of = {step.id: ref for ref, (step, _) in pending.items()}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        step, child = pending.pop(done[0])
        upstream_failure = next((need for need in step.needs if need in failed), None)
        try:
            manifest = ray.get(done[0])
        except Exception as err:
            unsettled = [ref_of[need] for need in step.needs if ref_of.get(need) in pending]
            if unsettled and not upstream_failure:  # settle the input first: its failure is the one to report
                pending[done[0]] = (step, child)
                ray.wait(unsettled, num_returns=len(unsettled))
                continue
            if upstream_failure:
                reason = f"skipped: input `{upstream_failure}` failed"
                record.update_step(step.id, status="skipped", error=reason)
                echo(f"[pipeline] {step.id}: {reason}")
            else:
                failed[step.id] = _summary(err)
                log = failed_step_log(record.folder, step.id)
                record.update_step(step.id, status="failed", error=failed[step.id], log=log, finished_at=now())
                echo(f"[pipeline] {step.id}: FAILED: {failed[step.id]}")
            failed.setdefault(step.id, "skipped")
            lineage.finish_step(child, status="FAILED")
            continue
        record.update_step(step.id, status="complete", metrics=manifest["metrics"], outputs=manifest["outputs"],
                           **manifest["timings"])  # fmt: skip
        lineage.finish_step(child, status="FINISHED", metrics=manifest["metrics"], outputs=manifest["outputs"])
        echo(f"[pipeline] {step.id}: complete in {manifest['timings']['duration_s']} s ({step.artifact})")
    if failed:
        first = next(iter(failed))
        record.data["error"] = f"step `{first}` failed: {failed[first]}"
        return "failed"
    return "complete"


def _initial_steps(plan: PipelinePlan) -> dict[str, dict[str, Any]]:
    return {
        step.id: {
            "uses": step.uses,
            "needs": list(step.needs),
            "fingerprint": step.fingerprint,
            "artifact_dir": step.artifact,
            "status": "pending",
            "outputs": step.outputs,
        }
        for step in plan.steps.values()
    }


def hold_endpoints(result: PipelineResult) -> None:
    """Keep the driver (and with it a local Ray) alive while `keep_alive` serve steps answer, until Ctrl-C."""
    urls = [
        step["outputs"]["url"]
        for step_id, step in result.record.data["steps"].items()
        if step["uses"] == "serve" and result.plan.steps[step_id].config.get("keep_alive") and step.get("outputs")
    ]
    if not urls:
        return
    print(f"[pipeline] serving at {', '.join(urls)} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("[pipeline] stopped serving", flush=True)
