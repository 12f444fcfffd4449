"""`pissa_convert`: the trained PiSSA adapter is also saved as plain LoRA, which applies to the original base."""

from __future__ import annotations

import datasets
import torch
from peft import PeftModel

from lf_ray.model.loader import load_causal_lm
from lf_ray.model.loading import load_model
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer
from tests.train.stage_runs import ROWS, losses, stage_config

IDS = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_the_converted_adapter_on_the_original_base_gives_the_trained_model(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "pissa_init=true", "pissa_convert=true", "lora_rank=4", "lora_target=q_proj,v_proj")
    model, _ = load_model(cfg, for_training=True, tokenizer=tokenizer)
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows[:ROWS])))

    trainer.train()

    assert len(losses(trainer)) == 10 and (tmp_path / "pissa_init" / "adapter_config.json").is_file()
    trained = logits(trainer.model)
    converted = PeftModel.from_pretrained(load_causal_lm(tiny_llama_path), tmp_path / "pissa_converted")
    torch.testing.assert_close(logits(converted), trained, atol=1e-4, rtol=1e-4)
    assert converted.peft_config["default"].r == 8  # PiSSA's rank-r change is a rank-2r plain LoRA
    assert not torch.allclose(trained, logits(load_causal_lm(tiny_llama_path)), atol=1e-3)
    assert trainer.model.peft_config["default"].init_lora_weights == "pissa_niter_16"  # training's adapter: untouched
