"""`include_effective_tokens_per_second`: LLaMA-Factory's `effective_tokens_per_sec` from a real short run's
metrics and the token count of the artifact's manifest, written to train_results.json / all_results.json by the
worker's `_save_outputs` (CPU, builtin tiny-llama, LoRA, no Ray)."""

from __future__ import annotations

import json

import datasets
import pytest

from lf_ray.artifacts import write_manifest
from lf_ray.errors import TrainError
from lf_ray.model.loader import load_causal_lm
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.effective_tokens import effective_tokens_per_sec, train_split_tokens, with_effective_tokens_per_sec
from lf_ray.train.stages import StageContext, build_trainer
from lf_ray.train.worker import _save_outputs
from tests.train.stage_runs import ROWS, lora, stage_config


def test_effective_tokens_per_sec_is_llama_factorys_calculate_tps():
    # 1200 tokens x 3 epochs in 4 s, on 2 devices: 450 tokens per second and device
    assert effective_tokens_per_sec(1200, {"epoch": 3.0, "train_runtime": 4.0}, world_size=2) == 450.0
    assert effective_tokens_per_sec(1200, {"epoch": 0.5, "train_runtime": 2.0}, world_size=1) == 300.0


def test_a_short_run_reports_its_effective_tokens_per_second(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    rows = rows[:ROWS]
    tokens = sum(len(row["input_ids"]) for row in rows)  # what the preprocess step counts into the manifest
    artifact = tmp_path / "tokenized"
    artifact.mkdir()
    write_manifest(artifact, {"status": "complete", "splits": {"train": {"rows_out": ROWS, "tokens": tokens}}})
    assert train_split_tokens(str(artifact)) == tokens

    cfg = stage_config("sft", "include_effective_tokens_per_second=true", "max_steps=3")
    output_dir = tmp_path / "out"
    args = build_training_arguments(cfg, output_dir=str(output_dir))
    model = lora(load_causal_lm(tiny_llama_path))
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows)))
    result = trainer.train()

    metrics = with_effective_tokens_per_sec(result.metrics, cfg, str(artifact), trainer.args.world_size)
    assert result.metrics["epoch"] == 3.0  # one batch of all 8 rows a step: 3 steps are 3 epochs
    expected = tokens * 3.0 / result.metrics["train_runtime"]  # one device
    assert metrics["effective_tokens_per_sec"] == pytest.approx(expected)
    assert with_effective_tokens_per_sec(result.metrics, cfg, str(artifact), 2)["effective_tokens_per_sec"] == (
        pytest.approx(expected / 2)
    )
    _save_outputs(trainer, tokenizer, cfg, metrics, str(output_dir))
    for name in ("train_results.json", "all_results.json"):
        saved = json.loads((output_dir / name).read_text())
        assert saved["effective_tokens_per_sec"] == pytest.approx(expected)

    off = stage_config("sft", "max_steps=3")
    assert "effective_tokens_per_sec" not in with_effective_tokens_per_sec(result.metrics, off, str(artifact), 1)
    with pytest.raises(TrainError, match="needs the train split's token count"):
        with_effective_tokens_per_sec(result.metrics, cfg, str(tmp_path / "no-artifact"), 1)
