"""Cross-field rules: each one fires with its message, all violations come together, defaults resolve."""

from __future__ import annotations

import re

import pytest

from lf_ray.config import find_violations, load_config, resolve_defaults, validate_config
from lf_ray.config.rules import RULES
from lf_ray.errors import ConfigError

VALID = {
    "model_name_or_path": "builtin:tiny-llama",
    "stage": "sft",
    "do_train": True,
    "finetuning_type": "lora",
    "dataset": "identity",
    "template": "llama3",
    "output_dir": "saves/tiny",
}


def violations(**changes) -> list[str]:
    return find_violations(load_config(None, base={**VALID, **changes}))


def test_the_valid_base_config_passes():
    cfg = load_config(None, base=VALID)
    assert find_violations(cfg) == []
    validate_config(cfg)


CASES = {
    "model_name_or_path_missing": ({"model_name_or_path": None}, "`model_name_or_path` is not set"),
    "cutoff_len_not_positive": ({"cutoff_len": 0}, "`cutoff_len` is 0; it must be a positive number"),
    "max_samples_not_positive": ({"max_samples": -5}, "`max_samples` is -5; use a positive number"),
    "neat_packing_without_packing": (
        {"neat_packing": True, "packing": False},
        "`neat_packing: true` packs sequences but `packing: false` turns packing off",
    ),
    "neat_packing_outside_sft": ({"neat_packing": True, "stage": "pt"}, "`neat_packing` only works with `stage: sft`"),
    "prompt_masking_outside_sft": ({"train_on_prompt": True, "stage": "rm"}, "`train_on_prompt` only apply to"),
    "mask_history_with_train_on_prompt": (
        {"mask_history": True, "train_on_prompt": True},
        "`mask_history: true` (train on the last turn only) contradicts `train_on_prompt: true`",
    ),
    "streaming_without_max_steps": (
        {"streaming": True},
        "`streaming: true` gives a dataset of unknown length, so `max_steps` must be a positive number (got -1)",
    ),
    "streaming_with_fractional_val_size": (
        {"streaming": True, "max_steps": 10, "val_size": 0.1},
        "`val_size` must be a whole number of examples (got 0.1)",
    ),
    "streaming_with_max_samples": (
        {"streaming": True, "max_steps": 10, "max_samples": 100},
        "`max_samples` cannot truncate a stream",
    ),
    "val_size_out_of_range": ({"val_size": 1.5}, "`val_size` is 1.5; use a fraction in [0, 1)"),
    "val_size_with_eval_dataset": (
        {"val_size": 0.1, "eval_dataset": "alpaca_en_demo"},
        "`val_size` and `eval_dataset` both define the evaluation set; keep one",
    ),
    "val_size_without_dataset": (
        {"val_size": 0.1, "dataset": None, "do_train": False},
        "`val_size` splits the evaluation set off `dataset`, but `dataset` is not set",
    ),
    "training_without_dataset": ({"dataset": None}, "`do_train: true` (stage `sft`) needs training data"),
    "evaluation_without_eval_data": (
        {"eval_strategy": "steps"},
        "`eval_strategy: steps` need evaluation data: set `val_size` (e.g. 0.1) or `eval_dataset`",
    ),
    "interleave_probs_with_concat": (
        {"interleave_probs": "1.0"},
        "`interleave_probs` only applies to interleaved mixing",
    ),
    "interleave_probs_count": (
        {"dataset": "a,b", "mix_strategy": "interleave_under", "interleave_probs": "0.2,0.3,0.5"},
        "`interleave_probs` has 3 values but `dataset` names 2 datasets (a, b)",
    ),
    "interleave_probs_not_a_distribution": (
        {"dataset": "a,b", "mix_strategy": "interleave_over", "interleave_probs": "0.5,0.4"},
        "`interleave_probs` [0.5, 0.4] sum to 0.9",
    ),
    "quantization_without_lora": (
        {"quantization_bit": 4, "finetuning_type": "full"},
        "`quantization_bit: 4` only works with LoRA (got `finetuning_type: full`)",
    ),
    "quantization_not_bnb": ({"quantization_bit": 3}, "bitsandbytes quantizes to 4 or 8 bits"),
    "quantization_with_pissa_init": ({"quantization_bit": 4, "pissa_init": True}, "`pissa_init` cannot initialize"),
    "quantization_with_resize_vocab": ({"quantization_bit": 8, "resize_vocab": True}, "`resize_vocab` cannot resize"),
    "quantization_with_many_adapters": (
        {"quantization_bit": 4, "adapter_name_or_path": "a,b"},
        "a quantized model takes a single adapter",
    ),
    "adapter_without_adapter_method": (
        {"adapter_name_or_path": "saves/a", "finetuning_type": "freeze"},
        "`adapter_name_or_path` loads LoRA adapters, but `finetuning_type` is `freeze`",
    ),
    "bf16_and_fp16": ({"bf16": True, "fp16": True}, "`bf16: true` and `fp16: true` pick two mixed-precision types"),
    "batch_sizes_below_one": (
        {"per_device_train_batch_size": 0, "gradient_accumulation_steps": 0},
        "`per_device_train_batch_size: 0` and `gradient_accumulation_steps: 0`: batch sizes",
    ),
    "predict_with_generate_outside_sft": (
        {"predict_with_generate": True, "stage": "dpo", "eval_dataset": "x"},
        "`predict_with_generate` only works with `stage: sft` (got `stage: dpo`)",
    ),
    "predict_without_generate": (
        {"do_predict": True, "eval_dataset": "x"},
        "`do_predict: true` with `stage: sft` saves generated text: also set `predict_with_generate: true`",
    ),
    "predict_with_generate_without_eval_dataset": (
        {"predict_with_generate": True},
        "`predict_with_generate: true` generates on `eval_dataset`, which is not set",
    ),
    "predict_with_generate_and_accuracy": (
        {"predict_with_generate": True, "compute_accuracy": True, "eval_dataset": "x"},
        "`predict_with_generate` and `compute_accuracy` cannot be used together",
    ),
    "lora_options_without_lora": (
        {"finetuning_type": "full", "use_dora": True, "loraplus_lr_ratio": 16.0, "create_new_adapter": True},
        "`use_dora`, `loraplus_lr_ratio`, `create_new_adapter` only apply to LoRA, but `finetuning_type` is `full`",
    ),
    "llama_pro_with_full": ({"use_llama_pro": True, "finetuning_type": "full"}, "`use_llama_pro` trains only"),
    "lora_with_optimizer": ({"use_galore": True}, "`use_galore` replaces the optimizer of full/freeze training"),
    "several_optimizers": (
        {"finetuning_type": "full", "use_galore": True, "use_apollo": True, "use_muon": True},
        "`use_galore`, `use_apollo`, `use_muon` are alternative optimizers; enable only one",
    ),
    "deepspeed_with_optimizer": (
        {"finetuning_type": "full", "use_muon": True, "deepspeed": "ds_z3_config.json"},
        "`use_muon` is incompatible with DeepSpeed",
    ),
    "badam_without_full": (
        {"use_badam": True},
        "`use_badam` picks the trainable block of the full model itself, but `finetuning_type` is `lora`",
    ),
    "badam_distributed": (
        {"finetuning_type": "full", "use_badam": True, "badam_mode": "ratio", "ray_num_workers": 2},
        "`use_badam` with `ray_num_workers: 2`: ratio-wise BAdam does not support distributed training",
    ),
    "special_tokens_config_unreadable": (
        {"new_special_tokens_config": "/nowhere/tokens.yaml"},
        "`new_special_tokens_config` /nowhere/tokens.yaml cannot be read",
    ),
    "description_init_without_descriptions": (
        {"init_special_tokens": "desc_init_w_noise"},
        "which `new_special_tokens_config` gives",
    ),
    "beam_settings": ({"length_penalty": 0.5}, "`length_penalty: 0.5` scores beam-search candidates"),
    "pissa_convert_without_pissa": ({"pissa_convert": True}, "`pissa_convert` converts a PiSSA adapter"),
    "sft_loss_variants": ({"use_dft_loss": True, "use_eaft_loss": True}, "are alternative SFT losses"),
    "reference_model_unused": ({"ref_model": "builtin:tiny-llama"}, "`ref_model` is the reference of stage dpo"),
    "pissa_with_reference_stage": (
        {"pissa_init": True, "stage": "kto"},
        "`pissa_init` cannot be used with `stage: kto`",
    ),
    "label_smoothing_without_sigmoid": (
        {"stage": "dpo", "pref_loss": "ipo", "dpo_label_smoothing": 0.1},
        "`dpo_label_smoothing` only works with `pref_loss: sigmoid` (got `ipo`)",
    ),
    "ppo_settings": (
        {"stage": "ppo", "reward_funcs": "exact_match", "use_badam": True, "finetuning_type": "full"},
        "`use_badam` is not supported with `stage: ppo`",
    ),
    "keys_of_other_stages": (
        {"stage": "kto", "pref_loss": "ipo", "num_generations": 4, "pref_beta": 0.2, "packing": True},
        "`pref_loss` (dpo), `packing` (pt, sft), `num_generations` (grpo) act only in the stages named; `stage: kto` "
        "reads none of them: remove them",
    ),
    "reward_model_keys": (
        {"stage": "grpo", "reward_model_adapters": "saves/rm"},
        "`reward_model_adapters` describes the reward model, but `reward_model` (its path) is not set",
    ),
    "online_rl_rewards": (
        {"stage": "grpo", "reward_funcs": "exact_match", "reward_weights": "1,2"},
        "`reward_weights: [1.0, 2.0]` gives 2 weights for 1 rewards (exact_match); give one weight each",
    ),
    "grpo_groups": (
        {"stage": "grpo", "reward_funcs": "exact_match", "num_generations": 3, "per_device_train_batch_size": 4},
        "`num_generations: 3` must divide the completions of one optimizer step: per_device_train_batch_size 4 × "
        "ray_num_workers 1 × gradient_accumulation_steps 1 = 4",
    ),
    "best_model_for_rm_or_ppo": (
        {"stage": "rm", "load_best_model_at_end": True},
        "`stage: rm` does not support `load_best_model_at_end`",
    ),
    "quantized_device_map_in_training": (
        {"quantization_bit": 4, "quantization_device_map": "auto"},
        "`quantization_device_map: auto` is for inference only",
    ),
    "fp8_with_quantization": ({"fp8": True, "quantization_bit": 4}, "`fp8: true` is not compatible"),
    "oft_finetuning": ({"finetuning_type": "oft"}, "`finetuning_type: oft` asks for OFT"),
    "inference_backend_in_training": ({"infer_backend": "vllm"}, "`infer_backend: vllm` is for serving and chat"),
    "ray_workers_below_one": ({"ray_num_workers": 0}, "`ray_num_workers` is 0; use at least 1"),
    "max_failures_below_minus_one": ({"max_failures": -2}, "`max_failures` is -2; use -1"),
    "negative_worker_resources": ({"resources_per_worker": {"GPU": -1}}, "`resources_per_worker` {'GPU': -1}"),
    "safetensors_disabled": ({"save_safetensors": False}, "`save_safetensors: false` is not possible"),
    "replicas_and_autoscaling": (
        {"num_replicas": 2, "autoscaling_config": {"max_replicas": 4}},
        "`num_replicas: 2` and `autoscaling_config` both set the replica count; keep one",
    ),
    "autoscaling_bounds": (
        {"autoscaling_config": {"min_replicas": 2, "max_replicas": 1}},
        "`autoscaling_config` has min_replicas 2 and max_replicas 1",
    ),
    "api_port_range": ({"api_port": 0}, "`api_port` is 0; use a TCP port from 1 to 65535"),
    "batching_limits": ({"batch_wait_timeout_s": -1}, "`batch_wait_timeout_s` (-1) >= 0"),
    "lora_module_names": ({"lora_modules": ["a=/x", "a=/y"]}, "`lora_modules` names two adapters `a`"),
    "warmup_ratio_invalid": (
        {"warmup_ratio": 0.1, "warmup_steps": 100},
        "`warmup_ratio: 0.1` and `warmup_steps: 100` both set the warmup; keep one",
    ),
    "learning_rate_not_positive": ({"learning_rate": -1.0e-4}, "`learning_rate` is -0.0001; use a positive step"),
    "no_training_length": (
        {"num_train_epochs": 0},
        "`num_train_epochs: 0` with `max_steps: -1` trains for no step; set `num_train_epochs` above 0",
    ),
    "lora_rank_below_one": ({"lora_rank": 0}, "`lora_rank` is 0; a LoRA rank is a whole number of at least 1"),
    "lora_alpha_not_positive": ({"lora_alpha": -16}, "`lora_alpha` is -16; use a positive scale"),
    "lora_dropout_out_of_range": ({"lora_dropout": 1.0}, "`lora_dropout` is 1.0; use a probability in [0, 1)"),
    "swanlab_keys_without_use_swanlab": (
        {"swanlab_project": "tiny", "swanlab_api_key": "key"},
        "`swanlab_project`, `swanlab_api_key` configure SwanLab tracking, which `use_swanlab` leaves off",
    ),
    "swanlab_logdir_not_local": (
        {"use_swanlab": True, "swanlab_logdir": "s3://bucket/swanlog"},
        "`swanlab_logdir: s3://bucket/swanlog`: SwanLab writes its run files to a local folder",
    ),
    "sampling_ranges": (
        {"top_p": 2, "temperature": -1},
        "out of range: `temperature: -1` (0 or more; 0 decodes greedily); `top_p: 2` (above 0, at most 1)",
    ),
    "unknown_tracker": (
        {"report_to": ["mlflow", "tensorbord"]},
        "`report_to: tensorbord` is not a tracker transformers integrates; use any of azure_ml,",
    ),
    "lark_secret_without_webhook": (
        {"use_swanlab": True, "swanlab_lark_secret": "secret"},
        "`swanlab_lark_secret` signs the Lark notification of `swanlab_lark_webhook_url`, which is not set",
    ),
    "profiler_keys_without_profiler": (
        {"profiler_wait_steps": 3, "profiler_with_stack": False},
        "`profiler_wait_steps: 3`, `profiler_with_stack: false` configure the torch profiler, which "
        "`enable_torch_profiler` leaves off; set `enable_torch_profiler: true`",
    ),
    "profiler_schedule_invalid": (
        {"enable_torch_profiler": True, "profiler_wait_steps": -1, "profiler_active_steps": 0},
        "`profiler_wait_steps: -1` and `profiler_active_steps: 0`: the torch profiler's schedule takes wait and "
        "warmup steps >= 0, at least 1 active step",
    ),
    "profiler_output_dir_not_local": (
        {"enable_torch_profiler": True, "profiler_output_dir": "s3://bucket/traces"},
        "`profiler_output_dir: s3://bucket/traces`: the torch profiler writes its traces to a local folder",
    ),
    "tune_section_is_valid": (
        {"tune": {"param_space": {"lora_rank": {"logunifrom": [4, 16]}}}},
        "`tune.param_space.lora_rank`: unknown distribution `logunifrom`; did you mean `loguniform`?",
    ),
    "tune_metric_needs_evaluation": (
        {"tune": {"param_space": {"lora_rank": {"choice": [4, 8]}}, "metric": "eval_loss"}},
        "`tune.metric: eval_loss` comes from evaluation during training, which is off",
    ),
    "tune_metric_reward_outside_online_rl": (
        {"tune": {"param_space": {"lora_rank": {"choice": [4, 8]}}, "metric": "reward", "mode": "max"}},
        "`tune.metric: reward` is logged by `stage: grpo` and `stage: ppo` only (got `stage: sft`)",
    ),
    "tune_scheduler_sees_fresh_metric": (
        {"tune": {"param_space": {"lora_rank": {"choice": [4, 8]}}, "scheduler": "asha", "metric": "train_loss"}},
        "`train_loss` exists only at the end; use `tune.metric: loss`",
    ),
}


def test_every_rule_has_a_case():
    assert {rule.__name__ for rule in RULES} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_fires_with_its_message(name):
    changes, message = CASES[name]
    rule = next(rule for rule in RULES if rule.__name__ == name)
    cfg = load_config(None, base={**VALID, **changes})
    fired = rule(cfg)
    assert fired is not None and message in fired
    assert rule(load_config(None, base=VALID)) is None
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(cfg)


def test_optimizer_rules_of_badam_and_muon():
    full = {"finetuning_type": "full"}
    assert violations(**full, use_badam=True, badam_mode="ratio", badam_update_ratio=0.1) == []
    assert violations(use_muon=True) == violations(use_adam_mini=True) == []  # both also optimize LoRA weights
    (layer,) = violations(**full, use_badam=True, deepspeed="ds_z3_config.json")
    assert layer.startswith("`use_badam` with `deepspeed`: layer-wise BAdam changes which weights train")
    assert layer.endswith("train BAdam on one worker (`ray_num_workers: 1`, one GPU) without `deepspeed`")
    (freeze,) = violations(finetuning_type="freeze", use_badam=True)
    assert "but `finetuning_type` is `freeze`" in freeze
    (both,) = violations(loraplus_lr_ratio=16.0, use_muon=True)
    assert both.startswith("`use_muon`, `loraplus_lr_ratio` are alternative optimizers")


def test_a_single_violation_names_the_source(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model_name_or_path: builtin:tiny-llama\ncutoff_len: 0\n")
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(path))
    assert str(err.value) == f"{path}: `cutoff_len` is 0; it must be a positive number of tokens, e.g. 2048"


def test_all_violations_are_reported_together(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("bf16: true\nfp16: true\ncutoff_len: 0\nstreaming: true\ndo_train: true\n")
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(path))
    lines = str(err.value).splitlines()
    assert lines[0] == f"5 problems in {path}:"
    starts = [
        "  - `model_name_or_path` is not set",
        "  - `cutoff_len` is 0",
        "  - `streaming: true` gives a dataset of unknown length",
        "  - `do_train: true` (stage `sft`) needs training data",
        "  - `bf16: true` and `fp16: true`",
    ]
    assert len(lines) == 1 + len(starts)
    assert all(line.startswith(start) for line, start in zip(lines[1:], starts, strict=True))


def test_interleaving_a_single_dataset_is_fine():
    assert violations(mix_strategy="interleave_under", interleave_probs="1.0") == []
    assert violations(mix_strategy="interleave_over") == []


def test_eval_data_satisfies_eval_strategy():
    assert violations(eval_strategy="steps", val_size=0.1) == []
    assert violations(eval_strategy="steps", eval_dataset="alpaca_en_demo") == []
    assert violations(evaluation_strategy="epoch", val_size=0.1) == []


def test_resolve_defaults():
    cfg = load_config(None, base=VALID)
    resolved = resolve_defaults(cfg)
    assert (resolved.data.packing, resolved.finetuning.lora_alpha, resolved.data.media_dir) == (False, 16, "data")
    assert (cfg.data.packing, cfg.finetuning.lora_alpha, cfg.data.media_dir) == (None, None, None)  # untouched

    assert resolve_defaults(load_config(None, base={**VALID, "stage": "pt"})).data.packing is True
    assert resolve_defaults(load_config(None, base={**VALID, "neat_packing": True})).data.packing is True
    assert resolve_defaults(load_config(None, base={**VALID, "stage": "pt", "packing": False})).data.packing is False
    explicit = resolve_defaults(load_config(None, base={**VALID, "lora_rank": 4, "lora_alpha": 32}))
    assert (explicit.finetuning.lora_rank, explicit.finetuning.lora_alpha) == (4, 32)
    assert resolve_defaults(load_config(None, base={**VALID, "lora_rank": 4})).finetuning.lora_alpha == 8
    assert resolve_defaults(resolved) == resolved


def test_lora_numbers_are_checked_for_lora_only_and_a_bad_rank_is_reported_once():
    assert violations(finetuning_type="full", lora_rank=0, lora_dropout=1.5) == []
    assert violations(num_train_epochs=0, max_steps=10) == []  # max_steps sets the length
    (only,) = find_violations(resolve_defaults(load_config(None, base={**VALID, "lora_rank": -2})))
    assert only.startswith("`lora_rank` is -2")  # not also the lora_alpha of -4 derived from it


def test_quantization_method_other_than_bitsandbytes_is_refused():
    (message,) = violations(quantization_bit=4, quantization_method="hqq")
    assert message.startswith("`quantization_method: hqq` quantizes with a library lf-ray does not drive yet")
    assert "its loader raises NotImplementedError); use `quantization_method: bnb`" in message
