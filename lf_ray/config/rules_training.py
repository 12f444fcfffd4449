"""Cross-field rules about the training run: precision, batch sizes, methods, stages, optimizers and Ray.

Each rule returns None or one message: what is wrong, which keys, how to fix it. `rules.validate_config`
runs them all. Training keys are read with `cfg.get`, which falls back to transformers' defaults.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lf_ray.config.loader import LfRayConfig

_LORA_ONLY = ("use_dora", "use_rslora", "pissa_init", "pissa_convert", "loraplus_lr_ratio")


def bf16_and_fp16(cfg: LfRayConfig) -> str | None:
    if cfg.get("bf16") and cfg.get("fp16"):
        return "`bf16: true` and `fp16: true` pick two mixed-precision types; keep one (bf16 on Ampere or newer)"
    return None


def batch_sizes_below_one(cfg: LfRayConfig) -> str | None:
    bad = [
        f"`{key}: {cfg.get(key)}`"
        for key in ("per_device_train_batch_size", "gradient_accumulation_steps")
        if cfg.get(key) < 1
    ]
    if bad:
        return f"{' and '.join(bad)}: batch sizes and accumulation steps must be at least 1"
    return None


def predict_with_generate_outside_sft(cfg: LfRayConfig) -> str | None:
    if cfg.get("predict_with_generate") and cfg.finetuning.stage != "sft":
        return f"`predict_with_generate` only works with `stage: sft` (got `stage: {cfg.finetuning.stage}`); remove it"
    return None


def predict_without_generate(cfg: LfRayConfig) -> str | None:
    if cfg.finetuning.stage == "sft" and cfg.get("do_predict") and not cfg.get("predict_with_generate"):
        return "`do_predict: true` with `stage: sft` saves generated text: also set `predict_with_generate: true`"
    return None


def predict_with_generate_without_eval_dataset(cfg: LfRayConfig) -> str | None:
    if cfg.get("predict_with_generate") and not cfg.data.eval_dataset:
        return "`predict_with_generate: true` generates on `eval_dataset`, which is not set; set `eval_dataset`"
    return None


def predict_with_generate_and_accuracy(cfg: LfRayConfig) -> str | None:
    if cfg.get("predict_with_generate") and cfg.finetuning.compute_accuracy:
        return "`predict_with_generate` and `compute_accuracy` cannot be used together; keep one"
    return None


def lora_options_without_lora(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    used = [key for key in _LORA_ONLY if getattr(ft, key) not in (None, False)]
    if ft.create_new_adapter and ft.finetuning_type != "lora":
        used.append("create_new_adapter")
    if used and ft.finetuning_type != "lora":
        names = ", ".join(f"`{key}`" for key in used)
        return (
            f"{names} only apply to LoRA, but `finetuning_type` is `{ft.finetuning_type}`; "
            "set `finetuning_type: lora` or remove them"
        )
    return None


def llama_pro_with_full(cfg: LfRayConfig) -> str | None:
    if cfg.finetuning.use_llama_pro and cfg.finetuning.finetuning_type == "full":
        return "`use_llama_pro` trains only the expanded blocks: use `finetuning_type: freeze` or `lora`, not `full`"
    return None


_OPTIMIZERS = ("use_galore", "use_apollo", "use_badam", "use_adam_mini", "use_muon")


def _optimizers(cfg: LfRayConfig) -> list[str]:
    return [key for key in _OPTIMIZERS if getattr(cfg.finetuning, key)]


def lora_with_optimizer(cfg: LfRayConfig) -> str | None:
    used = [key for key in _optimizers(cfg) if key in ("use_galore", "use_apollo")]  # Adam-mini, Muon: LoRA too
    if used and cfg.finetuning.finetuning_type == "lora":
        return (
            f"`{used[0]}` replaces the optimizer of full/freeze training and cannot be combined with LoRA; "
            "set `finetuning_type: full` or remove it"
        )
    return None


def several_optimizers(cfg: LfRayConfig) -> str | None:
    used = _optimizers(cfg) + (["loraplus_lr_ratio"] if cfg.finetuning.loraplus_lr_ratio is not None else [])
    if len(used) > 1:
        return f"{', '.join(f'`{key}`' for key in used)} are alternative optimizers; enable only one"
    return None


def deepspeed_with_optimizer(cfg: LfRayConfig) -> str | None:
    """GaLore / APOLLO project whole weight matrices and Muon orthogonalizes them, which ZeRO flattens and shards
    (BAdam: `badam_distributed`)."""
    used = [key for key in _optimizers(cfg) if key in ("use_galore", "use_apollo", "use_muon")]
    if used and cfg.get("deepspeed"):
        return f"`{used[0]}` is incompatible with DeepSpeed; remove `deepspeed` or `{used[0]}`"
    return None


def badam_without_full(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.use_badam and ft.finetuning_type != "full":
        return (
            f"`use_badam` picks the trainable block of the full model itself, but `finetuning_type` is "
            f"`{ft.finetuning_type}`; set `finetuning_type: full` or remove `use_badam`"
        )
    return None


def badam_distributed(cfg: LfRayConfig) -> str | None:
    """BAdam trains on one worker (one GPU) without DeepSpeed; LLaMA-Factory runs it distributed only layer-wise
    under ZeRO-3, which lf-ray has not verified."""
    ft = cfg.finetuning
    if not ft.use_badam:
        return None
    where = [f"`ray_num_workers: {cfg.ray.ray_num_workers}`"] if cfg.ray.ray_num_workers > 1 else []
    where += ["`deepspeed`"] if cfg.get("deepspeed") else []
    if not where:
        return None
    if ft.badam_mode == "ratio":
        why = "ratio-wise BAdam does not support distributed training (LLaMA-Factory refuses it too)"
    else:
        why = (
            "layer-wise BAdam changes which weights train every `badam_switch_interval` steps, which DDP across "
            "workers and DeepSpeed's ZeRO-1/2 cannot follow (LLaMA-Factory runs it distributed only under ZeRO-3, "
            "which lf-ray does not support for BAdam)"
        )
    fix = "train BAdam on one worker (`ray_num_workers: 1`, one GPU) without `deepspeed`"
    return f"`use_badam` with {' and '.join(where)}: {why}; {fix}"


def pissa_with_reference_stage(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.pissa_init and (ft.stage in ("ppo", "kto") or ft.use_ref_model):
        return f"`pissa_init` cannot be used with `stage: {ft.stage}` (it needs a reference model); remove it"
    return None


def pissa_convert_without_pissa(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.pissa_convert and not ft.pissa_init:
        return "`pissa_convert` converts a PiSSA adapter to plain LoRA, but `pissa_init` is off; set it, or remove both"
    return None


_SFT_LOSSES = {"use_dft_loss": None, "use_eaft_loss": "eaft_alpha", "use_asft_loss": "asft_alpha"}


def sft_loss_variants(cfg: LfRayConfig) -> str | None:
    """DFT / EAFT / ASFT: one at a time, in stage sft; an alpha only beside its loss."""
    ft = cfg.finetuning
    used = [key for key in _SFT_LOSSES if getattr(ft, key)]
    if len(used) > 1:
        return f"{' and '.join(f'`{key}`' for key in used)} are alternative SFT losses; enable only one"
    if used and ft.stage != "sft":
        return f"`{used[0]}` changes the loss of stage sft, not of `stage: {ft.stage}`; remove it"
    from lf_ray.config.schema import all_keys

    for loss, alpha in _SFT_LOSSES.items():
        if alpha and getattr(ft, alpha) != all_keys()[alpha].default and not getattr(ft, loss):
            return f"`{alpha}: {getattr(ft, alpha)}` weighs the loss `{loss}` turns on; set `{loss}: true` or remove it"
    return None


def reference_model_unused(cfg: LfRayConfig) -> str | None:
    from lf_ray.model.reference import wants_reference

    ft = cfg.finetuning
    given = [key for key in ("ref_model", "ref_model_adapters", "ref_model_quantization_bit") if getattr(ft, key)]
    if not given:
        return None
    if not ft.ref_model:
        return f"`{given[0]}` describes the reference model, but `ref_model` (its base model) is not set; set it"
    if not wants_reference(cfg):
        return (
            f"`ref_model` is the reference of stage dpo (not orpo / simpo), kto, ppo, and sft with `use_asft_loss`; "
            f"`stage: {ft.stage}`"
            + (f" with `pref_loss: {ft.pref_loss}`" if ft.stage == "dpo" else "")
            + " reads none: remove the ref_model keys"
        )
    if ft.ref_model_quantization_bit not in (None, 4, 8):
        return f"`ref_model_quantization_bit: {ft.ref_model_quantization_bit}`: bitsandbytes quantizes to 4 or 8 bits"
    return None


def label_smoothing_without_sigmoid(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.stage == "dpo" and ft.pref_loss != "sigmoid" and ft.dpo_label_smoothing > 1e-6:
        return f"`dpo_label_smoothing` only works with `pref_loss: sigmoid` (got `{ft.pref_loss}`); remove it"
    return None


PPO_KEYS = ("ppo_buffer_size", "ppo_epochs", "ppo_score_norm", "ppo_target", "ppo_whiten_rewards")
SHARED_REWARD_KEYS = ("reward_funcs", "reward_weights", "reward_format_pattern")
"""grpo's reward keys that ppo reads too (besides the reward model's)."""
ONLINE_RL = ("grpo", "ppo")


# TrainingArguments that only `Trainer.train`'s own loop reads; lf-ray's PPO loop replaces that loop.
_TRAINER_LOOP_ONLY = (
    "neftune_noise_alpha",
    "label_smoothing_factor",
    "auto_find_batch_size",
    "include_num_input_tokens_seen",
    "torch_empty_cache_steps",
)


def ppo_settings(cfg: LfRayConfig) -> str | None:
    """What lf-ray's PPO loop (`train.stages.ppo`) does not run: DeepSpeed, BAdam, evaluation while training, and
    what only the Trainer's own loop reads (NEFTune, label smoothing, Liger kernels, ...)."""
    from lf_ray.config.schema import all_keys

    ft = cfg.finetuning
    if ft.stage != "ppo":
        return None
    if min(ft.ppo_buffer_size, ft.ppo_epochs) < 1 or ft.ppo_target <= 0:
        return (
            f"`ppo_buffer_size: {ft.ppo_buffer_size}`, `ppo_epochs: {ft.ppo_epochs}`, `ppo_target: {ft.ppo_target}`: "
            "the first two must be at least 1 and the KL target above 0"
        )
    if cfg.get("deepspeed"):
        return (
            "`stage: ppo` runs lf-ray's own PPO loop on DDP, not DeepSpeed; remove `deepspeed` (or use `stage: grpo`, "
            "which runs on DeepSpeed ZeRO-2/3)"
        )
    if ft.use_badam:
        return "`use_badam` is not supported with `stage: ppo` (lf-ray's PPO loop builds an AdamW-family optimizer)"
    loop_only = [key for key in _TRAINER_LOOP_ONLY if cfg.get(key) != all_keys()[key].default]
    if cfg.model.enable_liger_kernel:
        loop_only.append("enable_liger_kernel")
    if cfg.get("train_sampling_strategy") == "group_by_length":
        loop_only.append("train_sampling_strategy: group_by_length")
    if cfg.get("logging_strategy") != "steps":
        loop_only.append(f"logging_strategy: {cfg.get('logging_strategy')}")
    if loop_only:
        return (
            f"`{'`, `'.join(loop_only)}`: {'acts' if len(loop_only) == 1 else 'act'} in the Trainer's own training "
            "loop, which stage ppo replaces with lf-ray's PPO loop (LLaMA-Factory's ignores them too); remove "
            f"{'it' if len(loop_only) == 1 else 'them'}"
        )
    evaluation = [key for key in ("do_eval", "early_stopping_steps") if cfg.get(key)]
    if str(cfg.get("eval_strategy") or "no") != "no":
        evaluation.insert(0, "eval_strategy")
    if evaluation:
        return (
            f"`{evaluation[0]}`: stage ppo does not evaluate while it trains (neither does LLaMA-Factory's); remove it "
            "and evaluate the output with `lf-ray eval` or a pipeline's eval step"
        )
    if str(cfg.get("save_strategy")) == "best":
        return "`save_strategy: best` needs evaluation, which stage ppo does not run; use steps or epoch"
    return None


def _stage_only_keys() -> dict[str, tuple[str, ...]]:
    """Keys only some stages read → those stages (LLaMA-Factory accepts them anywhere and ignores them)."""
    import dataclasses

    from lf_ray.config.grpo_args import GRPOArguments

    return {
        "pref_beta": ("dpo", "kto"),
        **dict.fromkeys(
            ("pref_loss", "pref_ftx", "pref_bco_weight", "dpo_label_smoothing", "simpo_gamma", "ld_alpha"), ("dpo",)
        ),
        **dict.fromkeys(("kto_chosen_weight", "kto_rejected_weight"), ("kto",)),
        "compute_accuracy": ("sft",),
        "packing": ("pt", "sft"),
        **dict.fromkeys((f.name for f in dataclasses.fields(GRPOArguments)), ("grpo",)),
        **dict.fromkeys(SHARED_REWARD_KEYS, ONLINE_RL),
        **dict.fromkeys(PPO_KEYS, ("ppo",)),
    }


def keys_of_other_stages(cfg: LfRayConfig) -> str | None:
    from lf_ray.config.schema import all_keys

    stage = cfg.finetuning.stage
    given = [
        f"`{key}` ({', '.join(stages)})"
        for key, stages in _stage_only_keys().items()
        if stage not in stages and cfg.get(key) not in (all_keys()[key].default, None, False)
    ]
    if given:
        return f"{', '.join(given)} act only in the stages named; `stage: {stage}` reads none of them: remove them"
    return None


REWARD_MODEL_KEYS = ("reward_model", "reward_model_adapters", "reward_model_quantization_bit", "reward_model_type")


def reward_model_keys(cfg: LfRayConfig) -> str | None:
    from lf_ray.config.schema import all_keys

    ft = cfg.finetuning
    given = [key for key in REWARD_MODEL_KEYS if getattr(ft, key) != all_keys()[key].default]
    if not given:
        return None
    if ft.stage not in ONLINE_RL:
        return (
            f"`{given[0]}` describes a reward model, which lf-ray reads in `stage: grpo` and `stage: ppo` only "
            f"(`stage: {ft.stage}` reads none): remove the reward_model keys"
        )
    if not ft.reward_model:
        return f"`{given[0]}` describes the reward model, but `reward_model` (its path) is not set; set it"
    if ft.reward_model_type == "api":
        if not ft.reward_model.startswith(("http://", "https://")):
            return (
                f"`reward_model_type: api` takes the URL of a served reward model (`lf-ray serve` of an rm step's "
                f"output with `stage: rm`, e.g. http://127.0.0.1:8000/v1); got `reward_model: {ft.reward_model}`"
            )
        if ft.reward_model_adapters or ft.reward_model_quantization_bit:
            return (
                "`reward_model_adapters` and `reward_model_quantization_bit` describe a local reward model, not a "
                "served one (`reward_model_type: api`); remove them"
            )
    if ft.reward_model_type == "lora" and ft.reward_model_adapters:
        return (
            "`reward_model_adapters` goes with `reward_model_type: full` (adapters merged into the reward model); "
            "with `lora`, `reward_model` is itself the adapter: remove one of them"
        )
    if ft.reward_model_quantization_bit not in (None, 4, 8):
        bits = ft.reward_model_quantization_bit
        return f"`reward_model_quantization_bit: {bits}`: bitsandbytes quantizes to 4 or 8 bits"
    return None


def online_rl_rewards(cfg: LfRayConfig) -> str | None:
    import re

    ft = cfg.finetuning
    if ft.stage not in ONLINE_RL:
        return None
    funcs = list(ft.reward_funcs or [])
    sources = len(funcs) + (1 if ft.reward_model else 0)
    if ft.reward_weights is not None and len(ft.reward_weights) != sources:
        names = funcs + (["reward_model"] if ft.reward_model else [])
        return (
            f"`reward_weights: {ft.reward_weights}` gives {len(ft.reward_weights)} weights for {sources} rewards "
            f"({', '.join(names)}); give one weight each, in that order"
        )
    if "format_match" in funcs and not ft.reward_format_pattern:
        return "the `format_match` reward needs `reward_format_pattern` (a regular expression a completion must match)"
    if ft.reward_format_pattern and "format_match" not in funcs:
        return "only the `format_match` reward reads `reward_format_pattern`; add it to `reward_funcs` or drop the key"
    if ft.reward_format_pattern:
        try:
            re.compile(ft.reward_format_pattern)
        except re.error as err:
            return f"`reward_format_pattern: {ft.reward_format_pattern}` is not a regular expression: {err}"
    return None


def grpo_groups(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.stage != "grpo":
        return None
    if ft.num_generations < 2:
        return f"`num_generations: {ft.num_generations}`: GRPO compares completions of one prompt; use 2 or more"
    if not cfg.generating.do_sample:
        return "`do_sample: false` would make a prompt's completions all alike, and GRPO learns from their differences"
    per_step = cfg.get("per_device_train_batch_size") * cfg.ray.ray_num_workers
    batch = per_step * cfg.get("gradient_accumulation_steps")
    if batch % ft.num_generations:
        return (
            f"`num_generations: {ft.num_generations}` must divide the completions of one optimizer step: "
            f"per_device_train_batch_size {cfg.get('per_device_train_batch_size')} × ray_num_workers "
            f"{cfg.ray.ray_num_workers} × gradient_accumulation_steps {cfg.get('gradient_accumulation_steps')} = "
            f"{batch}; change one of them"
        )
    if ft.max_completion_length < 1 or (ft.max_prompt_length is not None and ft.max_prompt_length < 1):
        return "`max_completion_length` and `max_prompt_length` must be at least 1"
    return None


def best_model_for_rm_or_ppo(cfg: LfRayConfig) -> str | None:
    if cfg.finetuning.stage in ("rm", "ppo") and cfg.get("load_best_model_at_end"):
        return f"`stage: {cfg.finetuning.stage}` does not support `load_best_model_at_end`; remove it"
    return None


def quantized_device_map_in_training(cfg: LfRayConfig) -> str | None:
    if cfg.get("do_train") and cfg.model.quantization_device_map == "auto":
        return "`quantization_device_map: auto` is for inference only; remove it when `do_train: true`"
    return None


def fp8_with_quantization(cfg: LfRayConfig) -> str | None:
    if cfg.get("fp8") and cfg.model.quantization_bit is not None:
        return "`fp8: true` is not compatible with `quantization_bit`; disable one of them"
    return None


def oft_finetuning(cfg: LfRayConfig) -> str | None:
    if cfg.finetuning.finetuning_type == "oft":
        return "`finetuning_type: oft` asks for OFT, which lf-ray does not implement. Fix: use lora, freeze or full"
    return None


def inference_backend_in_training(cfg: LfRayConfig) -> str | None:
    backend, stage = cfg.model.infer_backend, cfg.finetuning.stage
    if stage == "grpo" and backend == "vllm" and cfg.finetuning.grpo_vllm_server:
        return (
            "`infer_backend: vllm` (vLLM inside each training worker) and `grpo_vllm_server` (a separate rollout "
            "server) pick two places for grpo's rollouts; keep one"
        )
    if cfg.get("do_train") and backend != "huggingface" and not (stage == "grpo" and backend == "vllm"):
        return (
            f"`infer_backend: {backend}` is for serving and chat (and grpo's rollouts: vllm); "
            "use `infer_backend: huggingface` when `do_train: true`"
        )
    return None


def ray_workers_below_one(cfg: LfRayConfig) -> str | None:
    if cfg.ray.ray_num_workers < 1:
        return f"`ray_num_workers` is {cfg.ray.ray_num_workers}; use at least 1 (one worker per GPU)"
    return None


def max_failures_below_minus_one(cfg: LfRayConfig) -> str | None:
    if cfg.ray.max_failures < -1:
        return f"`max_failures` is {cfg.ray.max_failures}; use -1 (retry forever), 0 (never) or a positive count"
    return None


def negative_worker_resources(cfg: LfRayConfig) -> str | None:
    resources = cfg.ray.resources_per_worker or {}
    bad = {name: amount for name, amount in resources.items() if not isinstance(amount, (int, float)) or amount < 0}
    if bad:
        return f"`resources_per_worker` {bad}: every amount must be a number >= 0, e.g. {{GPU: 1, CPU: 4}}"
    return None


def safetensors_disabled(cfg: LfRayConfig) -> str | None:
    if cfg.get("save_safetensors") is False:
        return "`save_safetensors: false` is not possible with transformers 5 (it always saves safetensors); remove it"
    return None


def warmup_ratio_invalid(cfg: LfRayConfig) -> str | None:
    ratio, steps = cfg.get("warmup_ratio"), cfg.get("warmup_steps")
    if not 0 <= ratio < 1:
        return f"`warmup_ratio` is {ratio}; use a fraction of the total steps in [0, 1), e.g. 0.1"
    if ratio > 0 and steps > 0:
        return f"`warmup_ratio: {ratio}` and `warmup_steps: {steps}` both set the warmup; keep one"
    return None


def learning_rate_not_positive(cfg: LfRayConfig) -> str | None:
    if cfg.get("learning_rate") <= 0:
        return f"`learning_rate` is {cfg.get('learning_rate')}; use a positive step size, e.g. 1.0e-4"
    return None


def no_training_length(cfg: LfRayConfig) -> str | None:
    epochs, max_steps = cfg.get("num_train_epochs"), cfg.get("max_steps")
    if epochs <= 0 and max_steps <= 0:
        return (
            f"`num_train_epochs: {epochs}` with `max_steps: {max_steps}` trains for no step; "
            "set `num_train_epochs` above 0 (e.g. 3.0) or `max_steps` above 0"
        )
    return None


def lora_rank_below_one(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.finetuning_type == "lora" and ft.lora_rank < 1:
        return f"`lora_rank` is {ft.lora_rank}; a LoRA rank is a whole number of at least 1, e.g. 8"
    return None


def lora_alpha_not_positive(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning  # a lora_alpha derived from a bad lora_rank is that rule's message, not a second one
    if ft.finetuning_type == "lora" and ft.lora_rank >= 1 and ft.lora_alpha is not None and ft.lora_alpha <= 0:
        return (
            f"`lora_alpha` is {ft.lora_alpha}; use a positive scale, e.g. 16, "
            "or remove it (it defaults to 2 * lora_rank)"
        )
    return None


def lora_dropout_out_of_range(cfg: LfRayConfig) -> str | None:
    ft = cfg.finetuning
    if ft.finetuning_type == "lora" and not 0 <= ft.lora_dropout < 1:
        return f"`lora_dropout` is {ft.lora_dropout}; use a probability in [0, 1), e.g. 0.05 (0 turns it off)"
    return None


_PROFILER_KEYS = (
    "profiler_output_dir",
    "profiler_wait_steps",
    "profiler_warmup_steps",
    "profiler_active_steps",
    "profiler_repeat",
    "profiler_record_shapes",
    "profiler_profile_memory",
    "profiler_with_stack",
)


def profiler_keys_without_profiler(cfg: LfRayConfig) -> str | None:
    """The profiler_* keys configure `enable_torch_profiler`'s profiler (`profile_modules` works on its own)."""
    if cfg.get("enable_torch_profiler"):
        return None
    from lf_ray.config.schema import all_keys

    keys = all_keys()
    given = [f"`{key}: {json.dumps(cfg.get(key))}`" for key in _PROFILER_KEYS if cfg.get(key) != keys[key].default]
    if given:
        return (
            f"{', '.join(given)} configure{'s' if len(given) == 1 else ''} the torch profiler, which "
            "`enable_torch_profiler` leaves off; set `enable_torch_profiler: true` or remove them"
        )
    return None


def profiler_schedule_invalid(cfg: LfRayConfig) -> str | None:
    if not cfg.get("enable_torch_profiler"):
        return None
    least = {"profiler_wait_steps": 0, "profiler_warmup_steps": 0, "profiler_active_steps": 1, "profiler_repeat": 0}
    bad = [f"`{key}: {cfg.get(key)}`" for key, floor in least.items() if cfg.get(key) < floor]
    if bad:
        return (
            f"{' and '.join(bad)}: the torch profiler's schedule takes wait and warmup steps >= 0, at least 1 active "
            "step and a repeat count >= 0 (0 repeats the cycle until training ends)"
        )
    return None


def profiler_output_dir_not_local(cfg: LfRayConfig) -> str | None:
    from lf_ray import storage

    folder = cfg.get("profiler_output_dir")
    if folder and storage.is_uri(folder):
        return (
            f"`profiler_output_dir: {folder}`: the torch profiler writes its traces to a local folder; give a local "
            "or shared-filesystem path, or remove it to write them under `output_dir` (uploaded with the outputs "
            "when that is a URI)"
        )
    return None


TRAINING_RULES = (
    bf16_and_fp16,
    batch_sizes_below_one,
    predict_with_generate_outside_sft,
    predict_without_generate,
    predict_with_generate_without_eval_dataset,
    predict_with_generate_and_accuracy,
    lora_options_without_lora,
    llama_pro_with_full,
    lora_with_optimizer,
    several_optimizers,
    deepspeed_with_optimizer,
    badam_without_full,
    badam_distributed,
    pissa_with_reference_stage,
    pissa_convert_without_pissa,
    sft_loss_variants,
    reference_model_unused,
    label_smoothing_without_sigmoid,
    ppo_settings,
    keys_of_other_stages,
    reward_model_keys,
    online_rl_rewards,
    grpo_groups,
    best_model_for_rm_or_ppo,
    quantized_device_map_in_training,
    fp8_with_quantization,
    oft_finetuning,
    inference_backend_in_training,
    ray_workers_below_one,
    max_failures_below_minus_one,
    negative_worker_resources,
    safetensors_disabled,
    warmup_ratio_invalid,
    learning_rate_not_positive,
    no_training_length,
    lora_rank_below_one,
    lora_alpha_not_positive,
    lora_dropout_out_of_range,
    profiler_keys_without_profiler,
    profiler_schedule_invalid,
    profiler_output_dir_not_local,
)
