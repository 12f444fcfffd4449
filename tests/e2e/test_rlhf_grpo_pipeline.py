"""pipelines/rlhf_grpo.yaml end to end on a real local Ray, shortened: sft and rm → grpo scored by the rm step's
adapter and a reward function → eval → export → serve on the tiny Llama, and what `lf-ray run` prints about the
reward afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf_ray.config import read_config_file
from lf_ray.pipeline.executor import run_pipeline
from lf_ray.pipeline.learning import print_learning
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline
from tests.conftest import free_port

pytestmark = pytest.mark.usefixtures("ray_session")
ROOT = Path(__file__).resolve().parents[2]


def test_grpo_trains_the_sft_adapter_scored_by_the_rm_steps_adapter_and_serves_the_result(tmp_path, capsys):
    raw = read_config_file(ROOT / "pipelines" / "rlhf_grpo.yaml")
    raw["storage_path"] = str(tmp_path)
    steps = {step["id"]: step for step in raw["steps"]}
    steps["sft"]["with"].update(max_steps=4)
    steps["rm"]["with"].update(max_steps=4)
    steps["grpo"]["with"].update(max_steps=4, save_steps=2)
    steps["eval"]["with"].update(max_samples=4)
    steps["serve"]["with"].update(api_port=free_port())
    result = run_pipeline(plan_pipeline(parse_pipeline(raw)), echo=lambda line: None)
    assert result.ok, result.record.data.get("error")
    record = result.record.data["steps"]
    assert {step_id: step["status"] for step_id, step in record.items()} == dict.fromkeys(steps, "complete")

    grpo = Path(record["grpo"]["outputs"]["model"])
    assert json.loads((grpo / "adapter_config.json").read_text())["base_model_name_or_path"].endswith("tiny-llama")
    log = [json.loads(line) for line in (grpo / "trainer_log.jsonl").read_text().splitlines()]
    logged = [entry for entry in log if "rewards/reward_model/mean" in entry]
    assert len(logged) == 2 and all("rewards/numeric_match/mean" in entry and "kl" in entry for entry in logged)
    for entry in logged:  # reward_weights 0.5 (numeric_match), 1.0 (the reward model)
        weighted = 0.5 * entry["rewards/numeric_match/mean"] + entry["rewards/reward_model/mean"]
        assert entry["reward"] == pytest.approx(weighted, abs=1e-4)
    assert (Path(record["export"]["outputs"]["model"]) / "model.safetensors").is_file()
    endpoint = json.loads(Path(record["serve"]["outputs"]["endpoint"]).read_text())
    assert endpoint["smoke_request"]["usage"]["completion_tokens"] > 0

    print_learning(result.record)
    assert "grpo:\n  reward over 2 logged steps: first 1 " in capsys.readouterr().out
