"""MLflow lineage of a pipeline run: one parent run, one nested run per step.

The parent carries the pipeline's name, run id and storage folder; each child its step id, step type, stage,
fingerprint and artifact folder as tags, its config as params, and its metrics when it ends. A train step's
worker group logs per-step metrics and the loss plot into the same child run (its id travels to rank 0). A
step reused from the cache still gets a child run, tagged `lf_ray.cached`, carrying the metrics recorded when
it was built, so every run of the pipeline shows its whole graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lf_ray.tracking.mlflow_tracking import (
    TAG_PARENT_RUN,
    TAG_STAGE,
    get_or_create_experiment,
    log_metrics,
    log_missing_params,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TAG_PIPELINE = "lf_ray.pipeline"
TAG_RUN_ID = "lf_ray.run_id"
TAG_STEP = "lf_ray.step"
TAG_USES = "lf_ray.uses"
TAG_FINGERPRINT = "lf_ray.fingerprint"
TAG_ARTIFACT = "lf_ray.artifact_dir"
TAG_CACHED = "lf_ray.cached"


class PipelineLineage:
    """Creates and closes the MLflow runs of one pipeline run (driver side)."""

    def __init__(self, client: MlflowClient, uri: str, experiment_id: str, parent_run_id: str) -> None:
        self.client, self.uri = client, uri
        self.experiment_id, self.parent_run_id = experiment_id, parent_run_id

    @classmethod
    def start(cls, pipeline: str, run_id: str, tags: Mapping[str, str]) -> PipelineLineage:
        """The parent run, in the experiment named after the pipeline."""
        from mlflow.tracking import MlflowClient

        uri = tracking_uri()
        client = MlflowClient(uri)
        experiment_id = get_or_create_experiment(client, pipeline, uri)
        all_tags = {TAG_PIPELINE: pipeline, TAG_RUN_ID: run_id, **tags}
        parent = client.create_run(experiment_id, run_name=run_id, tags=all_tags)
        return cls(client, uri, experiment_id, parent.info.run_id)

    def start_step(
        self, step_id: str, uses: str, fingerprint: str, artifact_dir: str, config: Mapping[str, Any], *, cached: bool
    ) -> str:
        tags = {
            TAG_PARENT_RUN: self.parent_run_id,
            TAG_STEP: step_id,
            TAG_USES: uses,
            TAG_FINGERPRINT: fingerprint,
            TAG_ARTIFACT: artifact_dir,
            TAG_CACHED: str(cached).lower(),
        }
        if uses in ("train", "tune"):
            tags[TAG_STAGE] = str(config.get("stage", "sft"))
        run = self.client.create_run(self.experiment_id, run_name=step_id, tags=tags)
        log_missing_params(self.client, run.info.run_id, config)
        return run.info.run_id

    def finish_step(
        self,
        run_id: str,
        *,
        status: str,
        metrics: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the step's metrics and output paths, and end its run ("FINISHED" or "FAILED")."""
        log_metrics(self.client, run_id, metrics or {})
        for name, path in (outputs or {}).items():
            self.client.set_tag(run_id, f"lf_ray.output.{name}", str(path)[:5000])
        self.client.set_terminated(run_id, status=status)

    def finish(self, status: str, metrics: Mapping[str, Any] | None = None) -> None:
        log_metrics(self.client, self.parent_run_id, metrics or {})
        self.client.set_terminated(self.parent_run_id, status=status)
