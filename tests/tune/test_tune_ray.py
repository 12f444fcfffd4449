"""A real sweep: Ray Tune trials, each a Ray Train worker group, on the builtin tiny Llama, then export."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from lf_ray.artifacts import hash_tree
from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.tune import run_tune

pytestmark = pytest.mark.usefixtures("ray_session")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tune" / "tiny_llama_lora_asha.yaml"


def _sweep_config(tmp_path, *overrides: str):
    return prepare_config(
        EXAMPLE, [f"output_dir={tmp_path / 'sweep'}", f"ray_storage_path={tmp_path / 'ray'}", *overrides]
    )


def _free_cpus_settle(ray, want: float, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while (free := ray.available_resources().get("CPU", 0.0)) < want and time.monotonic() < deadline:
        time.sleep(0.5)
    return free


def test_asha_sweep_picks_the_best_trial_frees_stopped_ones_and_feeds_export(tmp_path, ray_session):
    from lf_ray.config import prepare_config as export_config
    from lf_ray.export.merge import run_export

    cfg = prepare_config(EXAMPLE, [f"ray_storage_path={tmp_path / 'ray'}"])
    result = run_tune(cfg, output_dir=tmp_path / "sweep", show_progress=False)  # what a pipeline step calls
    assert cfg.training["output_dir"] == "saves/tiny-llama/lora/tune"  # the caller's config is left alone

    rows = {row.trial_id: row for row in result.trials}
    assert len(rows) == 4
    configs = [(row.params["learning_rate"], row.params["lora_rank"]) for row in rows.values()]
    assert len(set(configs)) == 4, configs  # every trial trains a different config
    assert all(1e-4 <= lr <= 5e-2 and rank in (4, 8, 16) for lr, rank in configs)
    completed = [row for row in rows.values() if row.status == "completed"]
    stopped = [row for row in rows.values() if row.status == "stopped"]
    assert completed and stopped, {r.trial_id: r.status for r in rows.values()}  # ASHA stopped weak trials early
    assert all(row.step == 8 for row in completed) and all(row.step < 8 for row in stopped)
    # the best is the completed trial with the lowest final eval_loss, read from its all_results.json
    best = min(completed, key=lambda row: row.metric)
    assert result.best_trial_id == best.trial_id and result.best_metrics["eval_loss"] == best.metric
    final = json.loads((tmp_path / "sweep" / "trials" / best.trial_id / "all_results.json").read_text())
    assert final["eval_loss"] == best.metric
    assert result.best_config == best.params

    # a stopped trial's worker group and placement group are gone: the sweep ran trials one at a time on
    # 2 CPUs, and the cluster is whole again afterwards
    assert result.plan.concurrency == 1
    assert _free_cpus_settle(ray_session, 2.0) == pytest.approx(2.0)

    best_dir = Path(result.best_output_dir)
    assert best_dir == tmp_path / "sweep" / "best"
    assert hash_tree(best_dir / "adapter_model.safetensors") == hash_tree(
        tmp_path / "sweep" / "trials" / best.trial_id / "adapter_model.safetensors"
    )
    manifest = json.loads((best_dir / "manifest.json").read_text())
    assert manifest["trial_id"] == best.trial_id and manifest["value"] == best.metric
    assert json.loads((best_dir / "adapter_config.json").read_text())["r"] == best.params["lora_rank"]

    table = list(csv.DictReader(Path(result.table_path).read_text().splitlines()))
    assert {r["trial_id"] for r in table} == set(rows) and table[0]["status"] in ("completed", "stopped")
    assert json.loads(Path(result.json_path).read_text())["best_trial_id"] == best.trial_id

    _assert_mlflow_runs(result, rows)

    exported = run_export(
        export_config(
            None,
            [
                "model_name_or_path=builtin:tiny-llama",
                f"adapter_name_or_path={best_dir}",
                "template=llama3",
                "finetuning_type=lora",
                f"export_dir={tmp_path / 'export'}",
            ],
        )
    )
    assert exported.merged and (tmp_path / "export" / "model.safetensors").is_file()


def _assert_mlflow_runs(result, rows) -> None:
    from mlflow.tracking import MlflowClient

    from lf_ray.tracking.mlflow_tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    sweep = client.get_run(result.mlflow_run_id)
    assert sweep.info.status == "FINISHED" and sweep.data.metrics["best/eval_loss"] == result.best_metrics["eval_loss"]
    children = client.search_runs(
        [sweep.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{result.mlflow_run_id}'"
    )
    by_trial = {run.data.tags["lf_ray.tune.trial_id"]: run for run in children}
    assert set(by_trial) == set(rows)
    for trial_id, run in by_trial.items():
        expected = {"completed": "FINISHED", "stopped": "KILLED"}[rows[trial_id].status]
        assert run.info.status == expected and run.data.tags["lf_ray.tune.status"] == rows[trial_id].status
        assert float(run.data.params["learning_rate"]) == pytest.approx(rows[trial_id].params["learning_rate"])
        # the trial's worker group logged its steps into this child run
        assert client.get_metric_history(run.info.run_id, "loss")


def test_a_second_sweep_into_the_same_folder_needs_overwrite(tmp_path):
    (tmp_path / "sweep" / "trials").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"already holds a sweep \(.*/trials\); set `overwrite_output_dir: true`"):
        run_tune(_sweep_config(tmp_path, "overwrite_output_dir=false", "max_samples=8"))
