"""`lf-ray tune`: the dry-run plan, and clear errors for configs that are not sweeps."""

from __future__ import annotations

from pathlib import Path

import yaml

from lf_ray.cli import main
from lf_ray.config import prepare_config
from lf_ray.tune import tune_spec

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_prints_the_sweep_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["tune", str(ROOT / "examples/tune/tiny_llama_lora_asha.yaml"), f"output_dir={out}", "--dry-run"])
    text = capsys.readouterr().out
    assert code == 0
    assert "# plan: tune" in text and "4 trial(s) of stage sft / lora" in text
    assert "scheduler    asha (grace_period=1, reduction_factor=2)" in text
    assert "learning_rate            loguniform[0.0001, 0.05]" in text
    assert not out.exists()


def test_a_train_config_without_a_tune_section_is_refused(capsys):
    assert main(["tune", str(ROOT / "examples/train_lora/tiny_llama_lora_sft.yaml"), "--dry-run"]) == 2
    assert "has no `tune:` section, so there is nothing to sweep; add one" in capsys.readouterr().err


def test_a_bad_section_fails_before_anything_runs(capsys):
    bad = 'tune={"param_space": {"learning_rate": {"loguniform": [0, 1]}}, "scheduler": "asha"}'
    assert main(["tune", str(ROOT / "examples/tune/tiny_llama_lora_asha.yaml"), bad, "--dry-run"]) == 2
    assert "`tune.param_space.learning_rate`: `loguniform` needs low > 0, got 0" in capsys.readouterr().err


def test_the_sweep_pipelines_tune_step_is_a_valid_sweep_config():
    """pipelines/sweep.yaml's tune step (defaults + the data step's keys + its own) is a sweep lf-ray accepts."""
    pipeline = yaml.safe_load((ROOT / "pipelines/sweep.yaml").read_text())
    steps = {step["id"]: step for step in pipeline["steps"]}
    assert [steps[i]["uses"] for i in ("data", "sweep", "eval", "export")] == ["preprocess", "tune", "eval", "export"]
    assert steps["eval"]["needs"] == steps["export"]["needs"] == ["sweep"]
    values = {**pipeline["defaults"], **steps["data"]["with"], **steps["sweep"]["with"], "output_dir": "out/sweep"}
    spec = tune_spec(prepare_config(None, base=values))
    assert spec.num_trials == 4 and spec.scheduler == "asha" and spec.metric == "eval_loss"
