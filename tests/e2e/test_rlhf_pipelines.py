"""pipelines/rlhf.yaml and pipelines/rlhf_grpo.yaml end to end on a real local Ray, shortened: sft and rm → ppo
(2 DDP workers) or grpo, scored by the rm step's adapter → export (→ serve) on the tiny Llama, and what `lf-ray
run` prints about the reward afterwards. Their eval steps are left out: an eval step evaluates an RL step's
adapter as any other (tests/e2e/test_pipeline_runs.py), and its Ray Data start costs ~20 s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from lf_ray.config import read_config_file
from lf_ray.pipeline.executor import run_pipeline
from lf_ray.pipeline.learning import print_learning
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline
from lf_ray.pipeline.store import RunRecord
from lf_ray.train.stages.ppo import VALUE_HEAD_FILE
from tests.conftest import free_port

pytestmark = pytest.mark.usefixtures("ray_session")
ROOT = Path(__file__).resolve().parents[2]


def run_shortened(name: str, tmp_path: Path, changes: dict[str, dict[str, Any]]) -> tuple[RunRecord, list[dict]]:
    """The shipped pipeline without its eval step, each step's `with` updated by `changes`: its run record, after
    checking every step completed and the RL step trained the tiny Llama's adapter, and the RL step's logged steps
    that hold the reward model's reward."""
    raw = read_config_file(ROOT / "pipelines" / f"{name}.yaml")
    raw["storage_path"] = str(tmp_path)
    raw["steps"] = [step for step in raw["steps"] if step["id"] != "eval"]
    steps = {step["id"]: step for step in raw["steps"]}
    for step_id, values in changes.items():
        steps[step_id]["with"].update(values)
    result = run_pipeline(plan_pipeline(parse_pipeline(raw)), echo=lambda line: None)
    assert result.ok, result.record.data.get("error")
    record = result.record.data["steps"]
    assert {step_id: step["status"] for step_id, step in record.items()} == dict.fromkeys(steps, "complete")
    assert (Path(record["export"]["outputs"]["model"]) / "model.safetensors").is_file()
    rl = Path(record[next(s for s in ("ppo", "grpo") if s in steps)]["outputs"]["model"])
    assert json.loads((rl / "adapter_config.json").read_text())["base_model_name_or_path"].endswith("tiny-llama")
    log = [json.loads(line) for line in (rl / "trainer_log.jsonl").read_text().splitlines()]
    return result.record, [entry for entry in log if "rewards/reward_model/mean" in entry]


def test_ppo_trains_the_sft_adapter_with_a_value_head_scored_by_the_rm_steps_adapter(tmp_path):
    changes = {"sft": {"max_steps": 2}, "rm": {"max_steps": 2}}
    changes["ppo"] = {"max_steps": 4, "save_steps": 2, "ppo_epochs": 2, "max_new_tokens": 8}
    record, logged = run_shortened("rlhf", tmp_path, changes)
    ppo = Path(record.data["steps"]["ppo"]["outputs"]["model"])
    assert sorted(load_file(str(ppo / VALUE_HEAD_FILE))) == ["v_head.summary.bias", "v_head.summary.weight"]
    assert [entry["current_steps"] for entry in logged] == [2, 4]
    for entry in logged:  # the reward model's score is the whole reward; the KL penalty is measured apart
        assert entry["reward"] == pytest.approx(entry["rewards/reward_model/mean"], abs=1e-4)
        assert {"kl", "kl_coef", "value_loss", "policy_loss"} <= set(entry)
    assert logged[0]["kl"] > 0  # the reference is the adapter switched off (the base model), not the SFT policy


def test_grpo_trains_the_sft_adapter_scored_by_the_rm_steps_adapter_and_serves_the_result(tmp_path, capsys):
    changes = {"sft": {"max_steps": 4}, "rm": {"max_steps": 4}, "grpo": {"max_steps": 4, "save_steps": 2}}
    changes["serve"] = {"api_port": free_port()}
    record, logged = run_shortened("rlhf_grpo", tmp_path, changes)
    assert len(logged) == 2 and all("rewards/numeric_match/mean" in entry and "kl" in entry for entry in logged)
    for entry in logged:  # reward_weights 0.5 (numeric_match), 1.0 (the reward model)
        weighted = 0.5 * entry["rewards/numeric_match/mean"] + entry["rewards/reward_model/mean"]
        assert entry["reward"] == pytest.approx(weighted, abs=1e-4)
    endpoint = json.loads(Path(record.data["steps"]["serve"]["outputs"]["endpoint"]).read_text())
    assert endpoint["smoke_request"]["usage"]["completion_tokens"] > 0

    print_learning(record)
    assert "grpo:\n  reward over 2 logged steps: first 1 " in capsys.readouterr().out
