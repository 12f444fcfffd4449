"""The board's form → config dicts, the checks before a launch, and the preview text."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from lf_ray.config import prepare_config
from lf_ray.webui.board_args import (
    Problem,
    build_eval_args,
    build_export_args,
    build_train_args,
    check_config,
    check_form,
    dataset_choices,
    deepspeed_config,
    default_output_dir,
    list_checkpoints,
    preview_rows,
    preview_text,
    top_state,
)


def test_train_args_carry_the_form_values_with_their_types(train_state):
    args = build_train_args(train_state)
    assert args["dataset"] == "identity,alpaca_en_demo"
    assert args["learning_rate"] == 1e-4 and args["num_train_epochs"] == 2.0 and args["max_steps"] == 6
    assert (args["lora_rank"], args["lora_dropout"], args["lora_target"]) == (4, 0.05, "all")
    assert "lora_alpha" not in args and "max_samples" not in args  # empty boxes leave the config's defaults
    assert "bf16" not in args and "deepspeed" not in args and "freeze_trainable_layers" not in args
    assert args["output_dir"] == train_state["train.output_dir"] and args["plot_loss"] is True
    cfg = prepare_config(None, base=args)  # what the board writes is a config every rule accepts
    assert cfg.finetuning.lora_alpha == 8 and cfg.data.dataset == ["identity", "alpaca_en_demo"]
    assert cfg.training["per_device_train_batch_size"] == 2 and cfg.ray.ray_num_workers == 1


def test_stage_method_precision_validation_and_extra_args_reach_the_config(train_state):
    state = {
        **train_state,
        "top.finetuning_type": "freeze",
        "train.stage": "dpo",
        "train.dataset": ["dpo_en_demo"],
        "train.compute_type": "bf16",
        "train.val_size": 0.1,
        "train.extra_args": '{"seed": 7, "lora_rank": 99}',
        "train.resources_per_worker": '{"CPU": 2}',
        "top.adapter_path": ["saves/a", "saves/b"],
    }
    args = build_train_args(state)
    assert (args["stage"], args["pref_beta"], args["pref_loss"]) == ("dpo", 0.1, "sigmoid")
    assert (args["freeze_trainable_layers"], args["freeze_trainable_modules"]) == (2, "all")
    assert args["bf16"] is True and args["val_size"] == 0.1 and args["eval_steps"] == 3
    assert args["seed"] == 7 and args["lora_rank"] == 99  # extra arguments win over the form
    assert args["resources_per_worker"] == {"CPU": 2} and args["adapter_name_or_path"] == "saves/a,saves/b"


def test_the_grpo_fields_reach_a_config_that_validates(train_state):
    from lf_ray.config import prepare_config

    state = {
        **train_state,
        "train.stage": "grpo",
        "train.dataset": ["arithmetic_prompts"],
        "train.reward_funcs": "numeric_match,length_penalty",
        "train.num_generations": 2,
        "train.max_completion_length": 16,
        "train.grpo_beta": 0.04,
        "train.reward_model": "saves/rm",
    }
    args = build_train_args(state)
    assert (args["reward_funcs"], args["num_generations"], args["max_completion_length"]) == (
        "numeric_match,length_penalty",
        2,
        16,
    )
    assert (args["grpo_beta"], args["reward_model"], args["reward_model_type"]) == (0.04, "saves/rm", "lora")
    cfg = prepare_config(
        None, [f"{key}={value}" for key, value in args.items() if value is not None and key != "deepspeed"]
    )
    assert cfg.finetuning.reward_funcs == ["numeric_match", "length_penalty"] and cfg.finetuning.num_generations == 2


def test_the_ppo_fields_reach_a_config_that_validates(train_state):
    from lf_ray.config import prepare_config

    state = {
        **train_state,
        "top.finetuning_type": "full",
        "train.stage": "ppo",
        "train.dataset": ["arithmetic_prompts"],
        "train.reward_funcs": "",
        "train.reward_model": "saves/rm",
        "train.ppo_score_norm": True,
        "train.ppo_whiten_rewards": False,
    }
    args = build_train_args(state)
    assert (args["reward_model"], args["reward_model_type"], args["ppo_score_norm"]) == ("saves/rm", "full", True)
    assert "num_generations" not in args and args["reward_funcs"] is None
    cfg = prepare_config(
        None, [f"{key}={value}" for key, value in args.items() if value is not None and key != "deepspeed"]
    )
    assert (cfg.finetuning.stage, cfg.finetuning.ppo_score_norm, cfg.finetuning.reward_model) == (
        "ppo",
        True,
        "saves/rm",
    )


@pytest.mark.parametrize("stage", ["0", "2", "3"])
def test_deepspeed_stages_are_configured_for_the_trainer(stage, train_state):
    args = build_train_args({**train_state, "train.deepspeed_stage": stage, "train.ds_offload": True})
    zero = args["deepspeed"]["zero_optimization"]
    assert zero["stage"] == int(stage)
    assert args["deepspeed"]["train_micro_batch_size_per_gpu"] == "auto"
    assert ("offload_optimizer" in zero) == (stage in ("2", "3"))
    assert ("offload_param" in zero) == (stage == "3")
    if stage == "3":
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert deepspeed_config("none", True) is None


def test_eval_and_export_args(train_state):
    state = {
        **train_state,
        "top.adapter_path": ["saves/tiny-llama/lora/train_1"],
        "eval.dataset_dir": "builtin",
        "eval.dataset": ["identity_eval"],
        "eval.cutoff_len": 256,
        "eval.max_samples": "20",
        "eval.batch_size": 4,
        "eval.predict": True,
        "eval.max_new_tokens": 32,
        "eval.top_p": 0.9,
        "eval.temperature": 0.5,
        "eval.output_dir": "saves/eval_1",
        "export.export_dir": "saves/merged",
        "export.export_size": 2,
    }
    ev = build_eval_args(state)
    assert (ev["eval_dataset"], ev["max_samples"], ev["per_device_eval_batch_size"]) == ("identity_eval", 20, 4)
    assert ev["predict_with_generate"] is True and ev["save_dir"] == "saves/eval_1"
    assert ev["adapter_name_or_path"] == "saves/tiny-llama/lora/train_1" and ev["template"] == "llama3"
    ex = build_export_args(state)
    assert (ex["export_dir"], ex["export_size"], ex["finetuning_type"]) == ("saves/merged", 2, "lora")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"top.model_name_or_path": ""}, "err_no_model"),
        ({"train.dataset": []}, "err_no_dataset"),
        ({"train.output_dir": ""}, "err_no_output_dir"),
        ({"train.extra_args": "{seed: 7"}, "err_json"),
        ({"train.resources_per_worker": "[1, 2]"}, "err_json"),
        ({"top.ray_address": "http://head:8265", "train.output_dir": "saves/run"}, "err_relative_on_cluster"),
    ],
)
def test_the_form_is_checked_before_launching(train_state, change, key):
    problem = check_form("train", {**train_state, **change})
    assert problem is not None and problem.key == key


def test_demo_mode_and_a_running_job_refuse_to_launch(train_state):
    assert check_form("train", train_state) is None
    assert check_form("train", train_state, demo_mode=True) == Problem("err_demo")
    assert check_form("train", {**train_state, "train.dataset": []}, demo_mode=True).key == "err_no_dataset"
    assert check_form("train", train_state, running=True) == Problem("err_conflict")
    export_state = {**train_state, "top.finetuning_type": "full", "top.adapter_path": ["x"], "export.export_dir": "o"}
    assert check_form("export", export_state).key == "err_adapter_not_lora"


def test_config_rules_are_applied_to_what_the_board_would_write(train_state):
    problem = check_config("train", build_train_args({**train_state, "train.extra_args": '{"learning_rat": 0.1}'}))
    assert problem is not None and problem.key == "err_config"
    assert "learning_rat" in problem.values["error"] and "learning_rate" in problem.values["error"]  # the suggestion
    export = build_export_args({**train_state, "export.export_dir": "merged"})
    assert "export_legacy_format" in check_config("export", {**export, "export_legacy_format": True}).values["error"]
    evaluation = build_eval_args({**train_state, "eval.dataset": ["identity_eval"], "eval.output_dir": "o"})
    assert check_config("eval", evaluation) is None
    refused = check_config("eval", {**evaluation, "task": "no_such_task", "task_dir": "builtin"})
    assert "no_such_task" in refused.values["error"]


def test_preview_shows_the_exact_command_and_yaml(train_state):
    args = build_train_args(train_state)
    text = preview_text("train", args, "saves/run 1/lf_ray_train.yaml", None)
    first, _, rest = text.partition("\n\n")
    assert first == "lf-ray train 'saves/run 1/lf_ray_train.yaml'"  # quoted as a shell would need
    assert yaml.safe_load(rest) == args
    on_cluster = preview_text("train", args, "/nfs/run/lf_ray_train.yaml", "http://head:8265")
    assert on_cluster.startswith(
        "# submitted as a Ray job to http://head:8265\nlf-ray train /nfs/run/lf_ray_train.yaml\n"
    )


def test_output_dirs_and_checkpoints_follow_llama_boards_layout(tmp_path):
    out = default_output_dir(str(tmp_path), "builtin:tiny-llama", "lora")
    assert os.path.dirname(out) == str(tmp_path / "tiny-llama" / "lora")
    assert os.path.basename(out).startswith("train_")
    other_model = default_output_dir("saves", "/models/Qwen2.5-0.5B/", "full", "eval")
    assert other_model.startswith("saves/Qwen2.5-0.5B/full/eval_")
    older, newer, other = (tmp_path / "tiny-llama" / "lora" / name for name in ("a", "b", "not-a-checkpoint"))
    for folder in (older, newer, other):
        folder.mkdir(parents=True)
    (older / "adapter_config.json").write_text("{}")
    time.sleep(0.01)
    (newer / "adapter_config.json").write_text("{}")
    os.utime(older, (1, 1))
    assert list_checkpoints(tmp_path, "builtin:tiny-llama", "lora") == [str(newer), str(older)]
    assert list_checkpoints(tmp_path, "builtin:tiny-llama", "full") == []


def test_datasets_are_listed_and_previewed_from_dataset_info():
    assert {"identity", "alpaca_en_demo", "dpo_en_demo"} <= set(dataset_choices("builtin"))
    assert dataset_choices("/no/such/folder") == []
    rows = preview_rows("builtin", ["identity"], rows=2)
    assert rows["identity"][0] == {
        "instruction": "What should I call you?",
        "input": "",
        "output": "You can call me Lumen. I'm an AI assistant developed by the lf-ray team, here to help.",
    }
    assert len(rows["identity"]) == 2


def test_top_state_inverts_the_model_args(tiny_llama_path):
    cfg = prepare_config(None, base={"model_name_or_path": "builtin:tiny-llama", "template": "llama3"})
    state = top_state(cfg)
    assert state == {
        "top.model_name_or_path": "builtin:tiny-llama",
        "top.finetuning_type": "lora",
        "top.template": "llama3",
        "top.adapter_path": [],
    }
