"""The demo pipeline teaches the real SmolLM2-135M-Instruct its new identity, and it keeps its facts.

The slowest test of the suite (the whole demo, several minutes on 2 CPU cores): it is the main job's promise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_ray.config import read_config_file
from lf_ray.constants import DEMO_PIPELINE
from lf_ray.demo import identity_score, print_demo_summary
from lf_ray.pipeline.executor import run_pipeline
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline


@pytest.mark.usefixtures("ray_session")
def test_the_demo_learns_the_identity_and_keeps_a_fact(tmp_path, capsys):
    raw = read_config_file(DEMO_PIPELINE)
    raw["storage_path"] = str(tmp_path)
    result = run_pipeline(plan_pipeline(parse_pipeline(raw, source=str(DEMO_PIPELINE))), echo=lambda line: None)
    assert result.ok, result.record.data.get("error")

    score = identity_score(Path(result.record.data["steps"]["eval"]["outputs"]["predictions"]))
    assert score.questions == 11  # 10 unseen paraphrases + "Who are you?"
    assert score.named_before == 0
    assert score.named_after >= 0.8 * score.questions, score
    after = score.probes["What is the capital of France?"][1]
    assert "Paris" in after, after
    assert "Lumen" in score.probes["Who are you?"][1] and "Lumen" not in score.probes["Who are you?"][0]

    print_demo_summary(result)
    out = capsys.readouterr().out
    assert f"{score.named_before}/11 before training, {score.named_after}/11 after" in out
    assert "> Who are you?" in out and "mlflow ui --backend-store-uri" in out
    assert "served:    http://" in out and "deployed, answered, removed" in out
    exported = Path(result.record.data["steps"]["export"]["outputs"]["model"])
    assert (exported / "model.safetensors").is_file() and (exported / "Modelfile").is_file()
