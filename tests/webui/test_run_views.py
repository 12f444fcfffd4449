"""The Runs tab's table and page from a real run store, with a link to the run in a real MLflow store."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from lf_ray.pipeline.store import RunRecord
from lf_ray.webui.run_views import mlflow_link, run_details, runs_table


def _record(root, mlflow_uri: str | None = None) -> RunRecord:
    steps = {
        "data": {"uses": "preprocess", "needs": [], "status": "pending", "artifact_dir": str(root / "data")},
        "sft": {"uses": "train", "needs": ["data"], "status": "pending", "artifact_dir": str(root / "sft")},
    }
    record = RunRecord.create(root, "tiny", "tiny.yaml", steps)
    record.update_step("data", status="complete", duration_s=1.5)
    record.update_step("sft", status="failed", duration_s=4.25, error="ConfigError: bad key")
    if mlflow_uri:
        client = MlflowClient(mlflow_uri)
        experiment = client.create_experiment("tiny")
        run = client.create_run(experiment)
        record.data["mlflow"] = {"tracking_uri": mlflow_uri, "run_id": run.info.run_id}
    record.finish("failed")
    return record


def test_runs_are_listed_newest_first_with_step_counts(tmp_path):
    assert runs_table(str(tmp_path)) == []
    first, second = _record(tmp_path / "tiny"), _record(tmp_path / "tiny")
    rows = runs_table(str(tmp_path))
    assert [row[0] for row in rows] == [second.run_id, first.run_id]
    assert rows[0][1:3] == ["tiny", "failed"] and rows[0][5] == "1 complete, 1 failed"


def test_a_run_page_has_its_steps_and_links_to_mlflow_and_the_ray_dashboard(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    record = _record(tmp_path / "tiny", mlflow_uri=uri)
    page = run_details(str(tmp_path), record.run_id[:-3], "http://head:8265/", "en")
    assert page.startswith(f"### tiny · {record.run_id} · failed")
    assert f"| sft | train | failed | 4.2 | `{tmp_path / 'tiny' / 'sft'}` |" in page
    run_id = record.data["mlflow"]["run_id"]
    experiment = mlflow.MlflowClient(uri).get_run(run_id).info.experiment_id
    assert f"(http://127.0.0.1:5000/#/experiments/{experiment}/runs/{run_id})" in page
    assert f"`mlflow ui --backend-store-uri {uri}`" in page and "[Ray dashboard](http://head:8265/#/jobs)" in page
    assert "\n- sft: ConfigError: bad key\n" in page


def test_missing_runs_and_unreachable_mlflow_stores_are_said_plainly(tmp_path):
    assert run_details(str(tmp_path), None, "", "en") == f"No pipeline runs under {tmp_path} yet."
    assert run_details(str(tmp_path), "nope", "", "en").startswith("no run `nope` under")
    record = _record(tmp_path / "tiny")
    record.data["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path}/gone/none.db", "run_id": "abc"}
    assert mlflow_link(record) == f"MLflow run `abc` in `sqlite:///{tmp_path}/gone/none.db`"
    record.data["mlflow"] = None
    assert mlflow_link(record) is None
