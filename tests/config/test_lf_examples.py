"""LLaMA-Factory's own example configs (verbatim copies in lf_examples/) parse unchanged and keep their values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lf_ray.config import load_config, resolve_defaults, validate_config
from lf_ray.errors import ConfigError

EXAMPLES = Path(__file__).parent / "lf_examples"
ALL_EXAMPLES = sorted(str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.yaml"))


def load_example(name: str, model_dir: Path, *overrides: str):
    return load_config(EXAMPLES / name, [f"model_name_or_path={model_dir}", *overrides])


def test_every_example_is_covered():
    assert len(ALL_EXAMPLES) == 16


REFUSED_EXAMPLES = {
    "train_lora/qwen2vl_lora_sft.yaml": "`image_max_pixels: 262144`, `video_max_pixels: 16384` ask for vision",
}
"""Examples of features lf-ray refuses: they load, and validating them names the refusal instead of training
something else."""


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_parses_validates_and_round_trips(name, tmp_path):
    cfg = resolve_defaults(load_example(name, tmp_path))
    if name in REFUSED_EXAMPLES:
        with pytest.raises(ConfigError, match=re.escape(REFUSED_EXAMPLES[name])):
            validate_config(cfg)
    else:
        validate_config(cfg)
    assert cfg.model.model_name_or_path == str(tmp_path)

    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(cfg.to_yaml(non_default_only=True))
    assert load_config(dumped) == cfg


def test_lora_sft(tmp_path):
    cfg = resolve_defaults(load_example("train_lora/llama3_lora_sft.yaml", tmp_path))
    assert cfg.finetuning.stage == "sft"
    assert cfg.finetuning.finetuning_type == "lora"
    assert cfg.finetuning.lora_rank == 8
    assert cfg.finetuning.lora_alpha == 16  # LLaMA-Factory's default: lora_rank * 2
    assert cfg.finetuning.lora_target == ["all"]
    assert cfg.finetuning.plot_loss is True
    assert cfg.data.dataset == ["identity", "alpaca_en_demo"]
    assert cfg.data.template == "llama3"
    assert cfg.data.cutoff_len == 2048
    assert cfg.data.max_samples == 1000
    assert cfg.data.packing is False
    assert cfg.model.trust_remote_code is True
    assert cfg.training["learning_rate"] == 1e-4
    assert isinstance(cfg.training["learning_rate"], float)
    assert cfg.training["num_train_epochs"] == 3.0
    assert cfg.training["warmup_ratio"] == 0.1
    assert cfg.training["overwrite_output_dir"] is True
    assert cfg.training["ddp_timeout"] == 180000000
    assert cfg.training["output_dir"] == "saves/llama3-8b/lora/sft"
    assert cfg.get("bf16") is True
    assert cfg.get("eval_strategy") == "no"  # commented out in the file: transformers' default


def test_lora_sft_ray_train_era(tmp_path):
    cfg = load_example("train_lora/llama3_lora_sft_ray.yaml", tmp_path)
    assert cfg.ray.ray_num_workers == 4
    assert cfg.ray.resources_per_worker == {"GPU": 1}
    assert cfg.ray.placement_strategy == "PACK"
    assert cfg.ray.ray_run_name == "llama3_8b_sft_lora"
    assert cfg.ray.ray_storage_path == "./saves"
    assert cfg.ray.ray_init_kwargs is None
    assert cfg.data.dataset_dir == "REMOTE:llamafactory/demo_data"
    assert cfg.training["report_to"] == "none"
    assert cfg.training["resume_from_checkpoint"] is None
    assert cfg.training["save_only_model"] is False
    assert cfg.training["dataloader_num_workers"] == 4


def test_lora_sft_ray_remote_era(tmp_path):
    cfg = load_example("train_lora/qwen3_lora_sft_ray.yaml", tmp_path)
    assert cfg.ray.ray_num_workers == 4
    assert cfg.ray.resources_per_worker is None  # decided at launch
    assert cfg.data.template == "qwen3_nothink"


def test_preference_stages(tmp_path):
    dpo = load_example("train_lora/llama3_lora_dpo.yaml", tmp_path)
    assert (dpo.finetuning.stage, dpo.finetuning.pref_beta, dpo.finetuning.pref_loss) == ("dpo", 0.1, "sigmoid")
    assert dpo.finetuning.use_ref_model is True
    assert dpo.data.dataset == ["dpo_en_demo"]
    assert dpo.training["learning_rate"] == 5e-6

    kto = load_example("train_lora/llama3_lora_kto.yaml", tmp_path)
    assert (kto.finetuning.stage, kto.data.dataset) == ("kto", ["kto_en_demo"])

    reward = load_example("train_lora/llama3_lora_reward.yaml", tmp_path)
    assert (reward.finetuning.stage, reward.training["output_dir"]) == ("rm", "saves/llama3-8b/lora/reward")


def test_pretrain_packs_by_default(tmp_path):
    cfg = load_example("train_lora/llama3_lora_pretrain.yaml", tmp_path)
    assert cfg.data.packing is None
    assert cfg.data.template is None
    assert resolve_defaults(cfg).data.packing is True


def test_full_sft_with_deepspeed(tmp_path):
    cfg = load_example("train_full/llama3_full_sft.yaml", tmp_path)
    assert cfg.finetuning.finetuning_type == "full"
    assert cfg.training["deepspeed"] == "examples/deepspeed/ds_z3_config.json"
    assert cfg.training["gradient_accumulation_steps"] == 2
    assert cfg.training["learning_rate"] == 1e-5


def test_merge_lora(tmp_path):
    cfg = load_example("merge_lora/llama3_lora_sft.yaml", tmp_path)
    assert cfg.model.adapter_name_or_path == ["saves/llama3-8b/lora/sft"]
    assert cfg.model.export_dir == "output/llama3_lora_sft"
    assert (cfg.model.export_size, cfg.model.export_device, cfg.model.export_legacy_format) == (2, "cpu", False)
    assert cfg.training == {}


def test_inference(tmp_path):
    cfg = load_example("inference/llama3.yaml", tmp_path)
    assert (cfg.model.infer_backend, cfg.data.template) == ("huggingface", "llama3")
    assert cfg.get("do_train") is False


def test_predict_ppo_and_optimizer_examples(tmp_path):
    predict = load_example("train_lora/llama3_lora_predict.yaml", tmp_path)
    assert predict.data.eval_dataset == ["identity", "alpaca_en_demo"]
    assert (predict.get("do_predict"), predict.get("predict_with_generate"), predict.get("do_train")) == (
        True,
        True,
        False,
    )

    ppo = load_example("train_lora/llama3_lora_ppo.yaml", tmp_path)
    assert ppo.finetuning.reward_model == "saves/llama3-8b/lora/reward"
    assert (ppo.generating.max_new_tokens, ppo.generating.top_k, ppo.generating.top_p) == (512, 0, 0.9)
    assert (ppo.finetuning.stage, ppo.finetuning.reward_model_type, ppo.finetuning.ppo_epochs) == ("ppo", "lora", 4)

    badam = load_example("extras/badam/llama3_full_sft.yaml", tmp_path)
    assert (badam.finetuning.use_badam, badam.finetuning.badam_verbose, badam.data.val_size) == (True, 2, 0.1)

    pro = load_example("extras/llama_pro/llama3_freeze_sft.yaml", tmp_path)
    assert (pro.finetuning.freeze_trainable_layers, pro.finetuning.freeze_trainable_modules) == (8, ["all"])
    assert pro.get("fp16") is True

    vl = load_example("train_lora/qwen2vl_lora_sft.yaml", tmp_path)
    assert (vl.model.image_max_pixels, vl.model.video_max_pixels) == (262144, 16384)
    assert vl.data.tokenized_path is None
    assert load_example("train_lora/llama3_preprocess.yaml", tmp_path).data.tokenized_path == (
        "saves/llama3-8b/dataset/sft"
    )
