"""Training arguments: the class each stage gets, LLaMA-Factory keys mapped onto it, no bf16 on CPU."""

from __future__ import annotations

import re

import pytest

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.train.arguments import build_training_arguments, precision_flags, training_environment

BASE = {"model_name_or_path": "builtin:tiny-llama", "dataset": "identity", "output_dir": "saves/tiny"}


def config(**values):
    return prepare_config(None, base={**BASE, **values})


def arguments(tmp_path, overrides=None, **values):
    return build_training_arguments(config(**values), output_dir=str(tmp_path), overrides=overrides)


@pytest.mark.parametrize(
    ("stage", "pref_loss", "expected"),
    [
        ("pt", "sigmoid", "Seq2SeqTrainingArguments"),
        ("sft", "sigmoid", "Seq2SeqTrainingArguments"),
        ("rm", "sigmoid", "RewardConfig"),
        ("dpo", "sigmoid", "DPOConfig"),
        ("dpo", "hinge", "DPOConfig"),
        ("dpo", "kto_pair", "DPOConfig"),
        ("dpo", "orpo", "ORPOConfig"),
        ("dpo", "simpo", "CPOConfig"),
        ("kto", "sigmoid", "KTOConfig"),
        ("ppo", "sigmoid", "Seq2SeqTrainingArguments"),  # for lf-ray's own loop
    ],
)
def test_each_stage_gets_its_trainers_arguments_class(tmp_path, stage, pref_loss, expected):
    args = arguments(tmp_path, stage=stage, pref_loss=pref_loss)
    assert type(args).__name__ == expected
    assert args.output_dir == str(tmp_path)
    assert args.remove_unused_columns is False
    assert args.report_to == []  # "none"


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo", "kto"])
def test_no_mixed_precision_on_cpu_even_when_configured(tmp_path, stage):
    args = arguments(tmp_path, stage=stage, bf16=True)
    assert (args.bf16, args.fp16) == (False, False)


def test_precision_follows_the_config_on_a_gpu():
    assert precision_flags(config(bf16=True), has_accelerator=True) == {"bf16": True, "fp16": False}
    assert precision_flags(config(), has_accelerator=True) == {"bf16": False, "fp16": False}  # not TRL's True
    assert precision_flags(config(fp16=True), has_accelerator=False) == {"bf16": False, "fp16": False}


def test_trl_defaults_give_way_to_transformers_defaults(tmp_path):
    args = arguments(tmp_path, stage="dpo")  # TRL: 1e-6, every 10 steps, gradient checkpointing on
    assert args.learning_rate == 5e-5
    assert args.logging_steps == 500
    assert not args.gradient_checkpointing
    configured = arguments(tmp_path, stage="dpo", learning_rate=5e-6, logging_steps=5, gradient_checkpointing=True)
    assert (configured.learning_rate, configured.logging_steps, configured.gradient_checkpointing) == (5e-6, 5, True)


def test_dpo_sigmoid_with_sft_term(tmp_path):
    args = arguments(tmp_path, stage="dpo", pref_beta=0.2, pref_ftx=0.5, cutoff_len=256)
    assert args.beta == 0.2
    assert args.loss_type == ["sigmoid", "sft"]
    assert args.loss_weights == [1.0, 0.5]
    assert args.max_length == 256
    assert args.prediction_loss_only is True


def test_dpo_bco_is_reweighted_like_llama_factory(tmp_path):
    args = arguments(tmp_path, stage="dpo", pref_bco_weight=0.5)
    assert args.loss_type == ["sigmoid", "bco_pair"]
    assert args.loss_weights == pytest.approx([1 / 1.5, 0.5 / 1.5])


@pytest.mark.parametrize(("values", "loss_type"), [({"pref_loss": "hinge"}, "hinge"), ({"pref_loss": "ipo"}, "ipo")])
def test_dpo_trl_loss_types(tmp_path, values, loss_type):
    assert arguments(tmp_path, stage="dpo", **values).loss_type == [loss_type]


def test_dpo_losses_trl_dropped_are_named_for_the_hand_written_path(tmp_path):
    smoothed = arguments(tmp_path, stage="dpo", dpo_label_smoothing=0.1)
    assert (smoothed.loss_type, smoothed.label_smoothing) == (["cdpo"], 0.1)
    assert arguments(tmp_path, stage="dpo", pref_loss="kto_pair").loss_type == ["kto_pair"]
    with pytest.raises(ConfigError, match="`pref_bco_weight` cannot be combined with `pref_loss: kto_pair`"):
        arguments(tmp_path, stage="dpo", pref_loss="kto_pair", pref_bco_weight=0.5)
    with pytest.raises(ConfigError, match="`ld_alpha` cannot be combined with `pref_loss: sigmoid` with"):
        arguments(tmp_path, stage="dpo", dpo_label_smoothing=0.1, ld_alpha=0.5)


def test_simpo_maps_onto_cpo(tmp_path):
    args = arguments(tmp_path, stage="dpo", pref_loss="simpo", pref_beta=2.0, simpo_gamma=0.8, pref_ftx=0.3)
    assert (args.loss_type, args.beta, args.simpo_gamma, args.cpo_alpha) == ("simpo", 2.0, 0.8, 0.3)


def test_orpo_maps_beta_and_refuses_an_extra_sft_term(tmp_path):
    assert arguments(tmp_path, stage="dpo", pref_loss="orpo", pref_beta=0.25).beta == 0.25
    with pytest.raises(ConfigError, match="pref_ftx"):
        arguments(tmp_path, stage="dpo", pref_loss="orpo", pref_ftx=0.1)


def test_kto_weights_and_beta(tmp_path):
    args = arguments(tmp_path, stage="kto", pref_beta=0.3, kto_chosen_weight=1.5, kto_rejected_weight=0.5)
    assert (args.beta, args.desirable_weight, args.undesirable_weight) == (0.3, 1.5, 0.5)
    assert args.train_sampling_strategy == "random"  # TRL's "sequential" default is not forced on lf-ray rows
    with pytest.raises(ConfigError, match="pref_ftx"):
        arguments(tmp_path, stage="kto", pref_ftx=0.1)


def test_llama_factory_keys_transformers_5_dropped(tmp_path):
    args = arguments(
        tmp_path, stage="sft", warmup_ratio=0.1, overwrite_output_dir=True, save_safetensors=True, logging_dir="tb"
    )
    assert args.warmup_steps == 0.1  # a value below 1 is a ratio in transformers 5
    assert args.get_warmup_steps(100) == 10
    assert arguments(tmp_path, stage="sft", disable_shuffling=True).train_sampling_strategy == "sequential"


def test_training_environment_for_logging_dir_and_fp8():
    assert training_environment(config()) == {}
    assert training_environment(config(logging_dir="runs/tb", fp8=True, fp8_backend="te")) == {
        "TENSORBOARD_LOGGING_DIR": "runs/tb",
        "ACCELERATE_MIXED_PRECISION": "fp8",
        "ACCELERATE_FP8_BACKEND": "TE",
    }


def test_configured_keys_and_report_to_pass_through(tmp_path):
    args = arguments(tmp_path, stage="sft", per_device_train_batch_size=4, num_train_epochs=2.0, report_to="mlflow")
    assert (args.per_device_train_batch_size, args.num_train_epochs, args.report_to) == (4, 2.0, ["mlflow"])


def test_seq2seq_only_keys_are_ignored_for_trl_stages(tmp_path, caplog):
    args = arguments(tmp_path, stage="dpo", generation_max_length=64)
    assert not hasattr(args, "generation_max_length")
    assert "`generation_max_length` does not apply to stage `dpo`" in caplog.text


def test_overrides_win_and_unknown_overrides_fail(tmp_path):
    assert arguments(tmp_path, {"max_steps": 3, "beta": 0.7}, stage="dpo").max_steps == 3
    with pytest.raises(ConfigError, match="`desirable_weight`"):
        arguments(tmp_path, {"desirable_weight": 2.0}, stage="dpo")


def _low_rank(*keys: str):
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "finetuning_type=full", *keys])
    return build_training_arguments(cfg, output_dir="/tmp/out")


def test_galore_keys_become_transformers_galore_optimizer():
    args = _low_rank("use_galore=true", "galore_target=q_proj,v_proj", "galore_rank=8", "galore_proj_type=left")
    assert (args.optim, args.optim_target_modules) == ("galore_adamw", ["q_proj", "v_proj"])
    assert args.optim_args == "rank=8,update_proj_gap=200,scale=2.0,proj_type=left"  # LF's defaults otherwise
    assert _low_rank("use_galore=true", "optim=adafactor").optim == "galore_adafactor"
    with pytest.raises(ConfigError, match="GaLore comes in adamw_torch, adamw_torch_fused, adamw_bnb_8bit, adafactor"):
        _low_rank("use_galore=true", "optim=sgd")


def test_apollo_keys_become_transformers_apollo_optimizer():
    keys = ["use_apollo=true", "apollo_target=all", "apollo_proj=svd", "apollo_proj_type=right"]
    args = _low_rank(*keys, "apollo_scale_type=tensor")
    assert args.optim == "apollo_adamw"
    assert args.optim_args == "rank=16,update_proj_gap=200,scale=32.0,proj=svd,proj_type=right,scale_type=tensor"
    # `all`: every module name but the output heads (transformers keeps only the Linear ones)
    pattern = re.compile(args.optim_target_modules)
    assert pattern.fullmatch("model.layers.0.mlp.down_proj") and not pattern.fullmatch("lm_head")
    assert not pattern.fullmatch("score")
