"""The board's form → the config dict of the command it launches, checked before anything runs.

The form's state is a plain dict keyed by element id (`"train.learning_rate"`), so everything here is
unit-tested without Gradio. A check returns the key of a localized message (see locales.yaml) with its
format values, never raises: the board shows the message instead of launching.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import yaml

from lf_ray.constants import BUILTIN_PREFIX
from lf_ray.errors import LfRayError

Command = Literal["train", "eval", "export"]
State = Mapping[str, Any]

TRAIN_CONFIG_NAME = "lf_ray_train.yaml"
EVAL_CONFIG_NAME = "lf_ray_eval.yaml"
EXPORT_CONFIG_NAME = "lf_ray_export.yaml"
CONFIG_NAMES: dict[Command, str] = {"train": TRAIN_CONFIG_NAME, "eval": EVAL_CONFIG_NAME, "export": EXPORT_CONFIG_NAME}
COMPUTE_TYPES = ("fp32", "bf16", "fp16")
DEEPSPEED_STAGES = ("none", "0", "2", "3")


@dataclass(frozen=True)
class Problem:
    """Why the board refuses to launch: a message key of locales.yaml and the values its text names."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)


def model_short_name(model: str) -> str:
    """`builtin:tiny-llama` → `tiny-llama`; `/models/Qwen2.5-0.5B/` or `Qwen/Qwen2.5-0.5B` → `Qwen2.5-0.5B`."""
    return model.removeprefix(BUILTIN_PREFIX).rstrip("/").rsplit("/", 1)[-1] or "model"


def default_output_dir(save_dir: str, model: str, finetuning_type: str, command: Command = "train") -> str:
    """LLaMA Board's `saves/<model>/<finetuning type>/<command>_<date-time>`."""
    stamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    return os.path.join(save_dir, model_short_name(model or "model"), finetuning_type, f"{command}_{stamp}")


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """`None` for an empty box, the dict for a JSON object; ValueError otherwise."""
    if not text or not text.strip():
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def deepspeed_config(stage: str, offload: bool) -> dict[str, Any] | None:
    """LLaMA Board's generated DeepSpeed config: ZeRO `stage` with "auto" sizes the Trainer fills in."""
    if stage == "none":
        return None
    zero: dict[str, Any] = {"stage": int(stage)}
    if stage in ("2", "3"):
        zero.update(overlap_comm=False, contiguous_gradients=True)
    if stage == "2":
        zero.update(allgather_partitions=True, allgather_bucket_size=5e8, reduce_scatter=True, reduce_bucket_size=5e8)
    if stage == "3":
        zero.update(
            sub_group_size=1e9,
            reduce_bucket_size="auto",
            stage3_prefetch_bucket_size="auto",
            stage3_param_persistence_threshold="auto",
            stage3_max_live_parameters=1e9,
            stage3_max_reuse_distance=1e9,
            stage3_gather_16bit_weights_on_model_save=True,
        )
    if offload and stage in ("2", "3"):
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == "3":
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16},
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def model_args(state: State) -> dict[str, Any]:
    """The top bar's keys: model, finetuning method, template, adapters (every command and the chat use them)."""
    args: dict[str, Any] = {
        "model_name_or_path": state.get("top.model_name_or_path") or None,
        "finetuning_type": state.get("top.finetuning_type") or "lora",
    }
    if state.get("top.template"):
        args["template"] = state["top.template"]
    adapters = [path for path in state.get("top.adapter_path") or [] if path]
    if adapters:
        args["adapter_name_or_path"] = ",".join(adapters)
    return args


def _ray_args(state: State) -> dict[str, Any]:
    args: dict[str, Any] = {"ray_num_workers": int(state.get("train.ray_num_workers") or 1)}
    resources = parse_json_object(state.get("train.resources_per_worker"))
    if resources:
        args["resources_per_worker"] = resources
    if state.get("train.ray_storage_path"):
        args["ray_storage_path"] = state["train.ray_storage_path"]
    return args


def _adapter_args(state: State) -> dict[str, Any]:
    finetuning_type = state.get("top.finetuning_type") or "lora"
    if finetuning_type == "lora":
        args = {
            "lora_rank": int(state.get("train.lora_rank") or 8),
            "lora_dropout": float(state.get("train.lora_dropout") or 0.0),
            "lora_target": state.get("train.lora_target") or "all",
        }
        if state.get("train.lora_alpha"):
            args["lora_alpha"] = int(state["train.lora_alpha"])
        return args
    if finetuning_type == "freeze":
        return {
            "freeze_trainable_layers": int(state.get("train.freeze_trainable_layers") or 2),
            "freeze_trainable_modules": state.get("train.freeze_trainable_modules") or "all",
        }
    return {}


def _stage_args(state: State) -> dict[str, Any]:
    stage = state.get("train.stage") or "sft"
    if stage in ("dpo", "kto"):
        return {"pref_beta": float(state.get("train.pref_beta") or 0.1), "pref_loss": state.get("train.pref_loss")}
    if stage not in ("grpo", "ppo"):
        return {}
    args: dict[str, Any] = {"reward_funcs": state.get("train.reward_funcs") or None}
    if state.get("train.reward_model"):  # LLaMA Board's rule: an adapter under LoRA, else a full model
        kind = "lora" if (state.get("top.finetuning_type") or "lora") == "lora" else "full"
        args |= {"reward_model": state["train.reward_model"], "reward_model_type": kind}
    if stage == "ppo":
        return args | {
            "ppo_score_norm": bool(state.get("train.ppo_score_norm")),
            "ppo_whiten_rewards": bool(state.get("train.ppo_whiten_rewards")),
        }
    return args | {
        "num_generations": int(state.get("train.num_generations") or 8),
        "max_completion_length": int(state.get("train.max_completion_length") or 256),
        "grpo_beta": float(state.get("train.grpo_beta") or 0.0),
    }


def build_train_args(state: State) -> dict[str, Any]:
    """The `lf-ray train` config of a Train-tab state (LLaMA Board's `_parse_train_args`)."""
    val_size = float(state.get("train.val_size") or 0)
    args: dict[str, Any] = {
        "stage": state.get("train.stage") or "sft",
        "do_train": True,
        **model_args(state),
        "dataset_dir": state.get("train.dataset_dir") or "data",
        "dataset": ",".join(state.get("train.dataset") or []),
        "cutoff_len": int(state.get("train.cutoff_len") or 1024),
        "max_samples": int(state["train.max_samples"]) if state.get("train.max_samples") else None,
        "packing": bool(state.get("train.packing")),
        "learning_rate": float(state.get("train.learning_rate") or 5e-5),
        "num_train_epochs": float(state.get("train.num_train_epochs") or 3.0),
        "max_steps": int(state.get("train.max_steps") or -1),
        "per_device_train_batch_size": int(state.get("train.per_device_train_batch_size") or 1),
        "gradient_accumulation_steps": int(state.get("train.gradient_accumulation_steps") or 1),
        "lr_scheduler_type": state.get("train.lr_scheduler_type") or "cosine",
        "warmup_steps": int(state.get("train.warmup_steps") or 0),
        "logging_steps": int(state.get("train.logging_steps") or 5),
        "save_steps": int(state.get("train.save_steps") or 100),
        "output_dir": state.get("train.output_dir"),
        "plot_loss": True,
        "report_to": "none",
        **_adapter_args(state),
        **_stage_args(state),
        **_ray_args(state),
    }
    if args["max_samples"] is None:
        del args["max_samples"]
    compute_type = state.get("train.compute_type") or "fp32"
    if compute_type in ("bf16", "fp16"):
        args[compute_type] = True
    if val_size > 0:
        args.update(val_size=val_size, eval_strategy="steps", eval_steps=args["save_steps"])
    deepspeed = deepspeed_config(str(state.get("train.deepspeed_stage") or "none"), bool(state.get("train.ds_offload")))
    if deepspeed:
        args["deepspeed"] = deepspeed
    args.update(parse_json_object(state.get("train.extra_args")) or {})
    return args


def build_eval_args(state: State) -> dict[str, Any]:
    """The `lf-ray eval` config of an Evaluate-tab state: loss / perplexity, and generated answers when asked."""
    args: dict[str, Any] = {
        **model_args(state),
        "dataset_dir": state.get("eval.dataset_dir") or "data",
        "eval_dataset": ",".join(state.get("eval.dataset") or []),
        "cutoff_len": int(state.get("eval.cutoff_len") or 1024),
        "per_device_eval_batch_size": int(state.get("eval.batch_size") or 8),
        "predict_with_generate": bool(state.get("eval.predict")),
        "max_new_tokens": int(state.get("eval.max_new_tokens") or 128),
        "top_p": float(state.get("eval.top_p") or 0.7),
        "temperature": float(state.get("eval.temperature") or 0.95),
        "save_dir": state.get("eval.output_dir"),
    }
    if state.get("eval.max_samples"):
        args["max_samples"] = int(state["eval.max_samples"])
    return args


def build_export_args(state: State) -> dict[str, Any]:
    """The `lf-ray export` config of an Export-tab state: merge the adapters, shard the weights."""
    return {
        **model_args(state),
        "export_dir": state.get("export.export_dir"),
        "export_size": int(state.get("export.export_size") or 5),
    }


def output_dir_of(command: Command, state: State) -> str | None:
    key = {"train": "train.output_dir", "eval": "eval.output_dir", "export": "export.export_dir"}[command]
    return state.get(key) or None


BUILDERS = {"train": build_train_args, "eval": build_eval_args, "export": build_export_args}


def _missing(command: Command, state: State) -> Problem | None:
    """The first required field left empty."""
    if not state.get("top.model_name_or_path"):
        return Problem("err_no_model")
    if command in ("train", "eval") and not state.get(f"{command}.dataset"):
        return Problem("err_no_dataset")
    if not output_dir_of(command, state):
        return Problem("err_no_export_dir" if command == "export" else "err_no_output_dir")
    return None


def _malformed(command: Command, state: State) -> Problem | None:
    """A field whose value cannot work: bad JSON, a relative path for a cluster, adapters that cannot merge."""
    if command == "train":
        for key in ("train.extra_args", "train.resources_per_worker"):
            try:
                parse_json_object(state.get(key))
            except ValueError as err:
                return Problem("err_json", {"key": key.split(".", 1)[1], "error": str(err)})
    output_dir = output_dir_of(command, state) or ""
    if state.get("top.ray_address") and not os.path.isabs(output_dir):
        return Problem("err_relative_on_cluster", {"path": output_dir})
    if command == "export" and state.get("top.finetuning_type") != "lora" and state.get("top.adapter_path"):
        return Problem("err_adapter_not_lora")
    return None


def check_form(command: Command, state: State, *, demo_mode: bool = False, running: bool = False) -> Problem | None:
    """LLaMA Board's `_initialize`: what must be right before `command` can launch (None when nothing is wrong).
    In demo mode the form is still checked, so the user learns what is missing before being told nothing runs."""
    if running:
        return Problem("err_conflict")
    problem = _missing(command, state) or _malformed(command, state)
    if problem is None and demo_mode:
        return Problem("err_demo")
    return problem


def check_config(command: Command, args: Mapping[str, Any]) -> Problem | None:
    """What the CLI checks before `command` runs: every config rule, plus the eval and export steps' own checks."""
    from lf_ray.config import prepare_config
    from lf_ray.evaluate.evaluator import plan_eval
    from lf_ray.export.merge import check_export_config

    try:
        cfg = prepare_config(None, base=args)
        if command == "eval":
            plan_eval(cfg)
        elif command == "export":
            check_export_config(cfg)
    except LfRayError as err:
        return Problem("err_config", {"error": str(err)})
    return None


def config_yaml(args: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(args), sort_keys=False, allow_unicode=True, default_flow_style=False)


def command_line(command: Command, config_path: str) -> str:
    """The command the board runs, as a user would type it (the process is started without a shell)."""
    return shlex.join(["lf-ray", command, config_path])


def preview_text(command: Command, args: Mapping[str, Any], config_path: str, ray_address: str | None) -> str:
    """What **Preview command** shows: the exact command (and how it is submitted) and the YAML it reads."""
    line = command_line(command, config_path)
    if ray_address:
        line = f"# submitted as a Ray job to {ray_address}\n{line}"
    return f"{line}\n\n# {config_path}\n{config_yaml(args)}"


def list_checkpoints(save_dir: str | os.PathLike, model: str | None, finetuning_type: str) -> list[str]:
    """Trained outputs of `model` under `<save_dir>/<model>/<finetuning type>/` (LLaMA Board's checkpoint list):
    folders holding an adapter (LoRA) or model weights (freeze, full), newest first."""
    if not model:
        return []
    root = os.path.join(save_dir, model_short_name(model), finetuning_type)
    if not os.path.isdir(root):
        return []
    marker = "adapter_config.json" if finetuning_type == "lora" else "config.json"
    found = [entry.path for entry in os.scandir(root) if os.path.isfile(os.path.join(entry.path, marker))]
    return sorted(found, key=os.path.getmtime, reverse=True)


def dataset_choices(dataset_dir: str | None) -> list[str]:
    """The datasets of a dataset_info.json ([] when the folder has none: the preview says why)."""
    from lf_ray.data.registry import load_dataset_info

    try:
        return sorted(load_dataset_info(dataset_dir or "data"))
    except LfRayError:
        return []


def preview_rows(dataset_dir: str, names: list[str], rows: int = 3) -> dict[str, list[dict[str, Any]]]:
    """The first rows of each chosen dataset, as the files hold them (DataError names a bad entry or file)."""
    from lf_ray.data.readers import read_rows
    from lf_ray.data.registry import get_dataset_attrs

    return {attr.name: read_rows(attr, dataset_dir)[:rows] for attr in get_dataset_attrs(names, dataset_dir)}


def top_state(cfg: Any) -> dict[str, Any]:
    """The top bar's values of an inference config (what `lf-ray webchat CONFIG` loads), inverse of `model_args`."""
    return {
        "top.model_name_or_path": cfg.model.model_name_or_path,
        "top.finetuning_type": cfg.finetuning.finetuning_type,
        "top.template": cfg.data.template or "",
        "top.adapter_path": list(cfg.model.adapter_name_or_path or []),
    }
