"""What the stage tests share: a config per stage on its demo dataset, LoRA on the tiny model, a short training run
on a fixed batch and its logged losses (CPU, builtin tiny-llama, no Ray). `conftest.encoded` tokenizes the rows."""

from __future__ import annotations

import datasets
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from lf_ray.config import prepare_config
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer

CUTOFF = 64
ROWS = 8
DEMO = {
    "pt": "c4_demo",
    "sft": "alpaca_en_demo",
    "rm": "dpo_en_demo",
    "dpo": "dpo_en_demo",
    "kto": "kto_en_demo",
    "grpo": "arithmetic_prompts",
    "ppo": "arithmetic_prompts",
}
STAGE_KEYS = {
    "grpo": ("reward_funcs=tests.train.grpo_rewards:low_ids", "max_completion_length=8"),
    "ppo": ("reward_funcs=tests.train.grpo_rewards:low_ids", "max_new_tokens=8"),
}
"""What a stage cannot train without (grpo, ppo: a reward)."""
TRAINING = (
    f"cutoff_len={CUTOFF}",
    "learning_rate=5e-3",
    "lr_scheduler_type=constant",
    "max_steps=10",
    "logging_steps=1",
    f"per_device_train_batch_size={ROWS}",
    "save_strategy='no'",
    "seed=0",
    "disable_tqdm=true",
)


def stage_config(stage: str, *overrides: str):
    model = ["model_name_or_path=builtin:tiny-llama", "dataset_dir=builtin", f"dataset={DEMO[stage]}"]
    return prepare_config(None, [*model, f"stage={stage}", *TRAINING, *STAGE_KEYS.get(stage, ()), *overrides])


def lora(model, task_type: str = "CAUSAL_LM") -> PeftModel:
    torch.manual_seed(0)
    return get_peft_model(model, LoraConfig(task_type=task_type, r=8, lora_alpha=16, target_modules="all-linear"))


def train(cfg, model, tokenizer, rows, tmp_path):
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    dataset = datasets.Dataset.from_list(rows)
    context = StageContext(cfg=cfg, model=model, tokenizer=tokenizer, training_args=args, train_dataset=dataset)
    trainer = build_trainer(context)
    trainer.train()
    return trainer


def losses(trainer) -> list[float]:
    values = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(values) == trainer.args.max_steps
    return values


def assert_goes_down(trainer) -> None:
    values = losses(trainer)
    assert values[0] > values[-1], values
