"""The Runs tab's text: the run store's records as table rows and as a Markdown page with links."""

from __future__ import annotations

from lf_ray.errors import LfRayError
from lf_ray.pipeline.report import run_row
from lf_ray.pipeline.store import RunRecord, find_run, find_runs
from lf_ray.webui.locales import message

MLFLOW_UI = "http://127.0.0.1:5000"
"""Where `mlflow ui` listens by default: the link target when runs are tracked in a file or database."""


def runs_table(where: str) -> list[list[str]]:
    return [run_row(record) for record in find_runs(where or ".")]


def mlflow_link(record: RunRecord) -> str | None:
    """A Markdown link to the run's MLflow parent run (via `mlflow ui` when the store is a file or database)."""
    tracked = record.data.get("mlflow")
    if not tracked:
        return None
    uri, run_id = tracked["tracking_uri"], tracked["run_id"]
    ui = uri if uri.startswith(("http://", "https://")) else MLFLOW_UI
    try:
        from mlflow.tracking import MlflowClient

        experiment = MlflowClient(uri).get_run(run_id).info.experiment_id
    except Exception:  # the store moved or is unreachable: still name the run
        return f"MLflow run `{run_id}` in `{uri}`"
    link = f"[MLflow run {run_id}]({ui.rstrip('/')}/#/experiments/{experiment}/runs/{run_id})"
    return link if ui == uri else f"{link} (`mlflow ui --backend-store-uri {uri}`)"


def run_details(where: str, run_id: str | None, dashboard: str, lang: str) -> str:
    if not run_id:
        return message("info_no_runs", lang, path=where)
    try:
        record = find_run(where, run_id)
    except LfRayError as err:
        return str(err)
    data = record.data
    lines = [
        f"### {data['pipeline']} · {record.run_id} · {record.effective_status}",
        f"started {data['started_at']}, finished {data.get('finished_at') or '-'}",
        "",
        "| step | uses | status | seconds | artifact |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step_id, step in data["steps"].items():
        seconds = f"{step['duration_s']:.1f}" if step.get("duration_s") else "-"
        lines.append(f"| {step_id} | {step['uses']} | {step['status']} | {seconds} | `{step['artifact_dir']}` |")
    errors = [(step_id, step["error"]) for step_id, step in data["steps"].items() if step.get("error")]
    if data.get("error") or errors:
        lines += ["", *([f"- run: {data['error']}"] if data.get("error") else [])]
        lines += [f"- {step_id}: {error}" for step_id, error in errors]
    links = [link for link in (mlflow_link(record),) if link]
    if dashboard:
        links.append(f"[Ray dashboard]({dashboard.rstrip('/')}/#/jobs)")
    return "\n".join([*lines, "", " · ".join(links)])
