"""pipelines/rlhf.yaml and pipelines/rlhf_grpo.yaml end to end on a real local Ray, shortened: sft and rm → ppo
(2 DDP workers) or grpo, scored by the rm step's adapter → export on the tiny Llama, and what `lf-ray run` prints
about the reward afterwards.

Both run under one name in one store, so the second reuses the sft and rm steps the first committed (the two
pipelines share them, step for step). Their eval and serve steps are left out: they take an RL step's adapter and
its export as any other (tests/e2e/test_pipeline_runs.py), and cost ~20 s each."""

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

pytestmark = pytest.mark.usefixtures("ray_session")
ROOT = Path(__file__).resolve().parents[2]
SHARED = {"sft": {"max_steps": 2}, "rm": {"max_steps": 2}}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rlhf_store")


def run_shortened(name: str, store: Path, changes: dict[str, dict[str, Any]]) -> tuple[RunRecord, list[dict]]:
    """The shipped pipeline without its eval and serve steps, named `rlhf` in `store`, each step's `with` updated by
    `changes`: its run record, after checking every step completed (or was reused) and the RL step trained the
    tiny Llama's adapter, and the RL step's logged steps that hold the reward model's reward."""
    raw = read_config_file(ROOT / "pipelines" / f"{name}.yaml")
    raw.update(name="rlhf", storage_path=str(store))
    raw["steps"] = [step for step in raw["steps"] if step["uses"] not in ("eval", "serve")]
    steps = {step["id"]: step for step in raw["steps"]}
    for step_id, values in (SHARED | changes).items():
        steps[step_id]["with"].update(values)
    result = run_pipeline(plan_pipeline(parse_pipeline(raw)), echo=lambda line: None)
    assert result.ok, result.record.data.get("error")
    record = result.record.data["steps"]
    assert set(record) == set(steps) and all(step["status"] in ("complete", "cached") for step in record.values())
    assert (Path(record["export"]["outputs"]["model"]) / "model.safetensors").is_file()
    rl = Path(record[next(s for s in ("ppo", "grpo") if s in steps)]["outputs"]["model"])
    assert json.loads((rl / "adapter_config.json").read_text())["base_model_name_or_path"].endswith("tiny-llama")
    log = [json.loads(line) for line in (rl / "trainer_log.jsonl").read_text().splitlines()]
    return result.record, [entry for entry in log if "rewards/reward_model/mean" in entry]


def test_ppo_trains_the_sft_adapter_with_a_value_head_scored_by_the_rm_steps_adapter(store):
    changes = {"ppo": {"max_steps": 4, "save_steps": 2, "ppo_epochs": 2, "max_new_tokens": 8}}
    record, logged = run_shortened("rlhf", store, changes)
    ppo = Path(record.data["steps"]["ppo"]["outputs"]["model"])
    assert sorted(load_file(str(ppo / VALUE_HEAD_FILE))) == ["v_head.summary.bias", "v_head.summary.weight"]
    assert [entry["current_steps"] for entry in logged] == [2, 4]
    for entry in logged:  # the reward model's score is the whole reward; the KL penalty is measured apart
        assert entry["reward"] == pytest.approx(entry["rewards/reward_model/mean"], abs=1e-4)
        assert {"kl", "kl_coef", "value_loss", "policy_loss"} <= set(entry)
    assert logged[0]["kl"] > 0  # the reference is the adapter switched off (the base model), not the SFT policy


def test_grpo_trains_the_sft_adapter_scored_by_the_rm_steps_adapter_and_a_reward_function(store, capsys):
    record, logged = run_shortened("rlhf_grpo", store, {"grpo": {"max_steps": 4, "save_steps": 2}})
    assert len(logged) == 2 and all("rewards/numeric_match/mean" in entry and "kl" in entry for entry in logged)
    for entry in logged:  # reward_weights 0.5 (numeric_match), 1.0 (the reward model)
        weighted = 0.5 * entry["rewards/numeric_match/mean"] + entry["rewards/reward_model/mean"]
        assert entry["reward"] == pytest.approx(weighted, abs=1e-4)

    print_learning(record)
    assert "grpo:\n  reward over 2 logged steps: first 1 " in capsys.readouterr().out
