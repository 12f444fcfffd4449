"""The demo's closing summary: did SmolLM2 learn its new identity, and does it still know its facts?

The eval step of pipelines/demo.yaml writes `generated_predictions.jsonl` with `predict` (after training) and
`base_predict` (the same model with its adapter disabled) for the unseen identity questions and two probes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray.data.demo_content import ASSISTANT_NAME, PROBE_PAIRS

if TYPE_CHECKING:
    from lf_ray.pipeline.executor import PipelineResult


@dataclass(frozen=True)
class IdentityScore:
    questions: int  # rows whose reference answer names the assistant
    named_before: int  # base model answers that name it
    named_after: int  # trained model answers that name it
    probes: dict[str, tuple[str, str]]  # probe question -> (answer before, answer after)

    @property
    def rate_after(self) -> float:
        return self.named_after / self.questions if self.questions else 0.0


def _question(prompt: str) -> str:
    """The probe question inside a rendered prompt (the template wraps it in role markers)."""
    return next((question for question, _ in PROBE_PAIRS if question in prompt), "")


def identity_score(predictions: Path, name: str = ASSISTANT_NAME) -> IdentityScore:
    rows = [json.loads(line) for line in Path(predictions).read_text(encoding="utf-8").splitlines() if line]
    identity = [row for row in rows if name in row["label"]]
    probes = {}
    for row in rows:
        question = _question(row["prompt"])
        if question:
            probes[question] = (row.get("base_predict", ""), row["predict"])
    return IdentityScore(
        questions=len(identity),
        named_before=sum(name in row.get("base_predict", "") for row in identity),
        named_after=sum(name in row["predict"] for row in identity),
        probes=probes,
    )


def _metrics_line(metrics: dict[str, Any]) -> str:
    keys = ("eval_loss", "perplexity", "predict_bleu-4", "predict_rouge-l", "base_predict_rouge-l")
    return ", ".join(f"{key} {metrics[key]:.4g}" for key in keys if isinstance(metrics.get(key), (int, float)))


def print_demo_summary(result: PipelineResult) -> None:
    steps = result.record.data["steps"]
    eval_outputs = steps["eval"].get("outputs") or result.plan.steps["eval"].outputs
    score = identity_score(Path(eval_outputs["predictions"]))
    print(f"\n=== demo summary: SmolLM2-135M-Instruct taught to be {ASSISTANT_NAME} ===")
    print(
        f"unseen identity questions answered with the name {ASSISTANT_NAME!r}: "
        f"{score.named_before}/{score.questions} before training, {score.named_after}/{score.questions} after"
    )
    for question, (before, after) in score.probes.items():
        print(f"\n> {question}\n  before: {before}\n  after:  {after}")
    print(f"\neval:      {_metrics_line(steps['eval'].get('metrics') or {})}")
    print(f"adapter:   {steps['sft']['outputs']['model']}")
    exported = steps["export"]["outputs"]["model"]
    print(f"exported:  {exported}   (chat with it: lf-ray chat CONFIG with model_name_or_path: {exported})")
    serve = steps.get("serve") or {}
    if serve.get("outputs"):
        endpoint = json.loads(Path(serve["outputs"]["endpoint"]).read_text(encoding="utf-8"))
        state = "still serving" if endpoint["keep_alive"] else "deployed, answered, removed"
        print(f'served:    {endpoint["url"]} ({state}); "Hello!" -> {endpoint["smoke_request"]["answer"]!r}')
    print(f"run:       lf-ray runs show {result.record.run_id} {result.plan.spec.storage_path}")
    if result.tracking_uri:
        print(f"MLflow:    mlflow ui --backend-store-uri {result.tracking_uri}")
