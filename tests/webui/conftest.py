"""A Train-tab state as the browser would send it (values typed as Gradio hands them over)."""

from __future__ import annotations

import pytest


@pytest.fixture
def train_state(tmp_path) -> dict:
    return {
        "top.lang": "en",
        "top.model_name_or_path": "builtin:tiny-llama",
        "top.finetuning_type": "lora",
        "top.template": "llama3",
        "top.adapter_path": [],
        "top.ray_address": "",
        "train.stage": "sft",
        "train.dataset_dir": "builtin",
        "train.dataset": ["identity", "alpaca_en_demo"],
        "train.learning_rate": "1e-4",
        "train.num_train_epochs": "2.0",
        "train.max_steps": 6,
        "train.max_samples": "",
        "train.cutoff_len": 128,
        "train.per_device_train_batch_size": 2,
        "train.gradient_accumulation_steps": 1,
        "train.lr_scheduler_type": "cosine",
        "train.warmup_steps": 0,
        "train.compute_type": "fp32",
        "train.logging_steps": 1,
        "train.save_steps": 3,
        "train.val_size": 0,
        "train.packing": False,
        "train.extra_args": "",
        "train.lora_rank": 4,
        "train.lora_alpha": None,
        "train.lora_dropout": 0.05,
        "train.lora_target": "all",
        "train.freeze_trainable_layers": 2,
        "train.freeze_trainable_modules": "all",
        "train.pref_beta": 0.1,
        "train.pref_loss": "sigmoid",
        "train.reward_funcs": "numeric_match",
        "train.reward_model": "",
        "train.num_generations": 8,
        "train.max_completion_length": 256,
        "train.grpo_beta": 0.0,
        "train.deepspeed_stage": "none",
        "train.ds_offload": False,
        "train.ray_num_workers": 1,
        "train.resources_per_worker": "",
        "train.ray_storage_path": "",
        "train.output_dir": str(tmp_path / "saves" / "tiny-llama" / "lora" / "train_1"),
        "train.config_path": "",
    }
