"""Fine-tuning-argument mixin for `stage: grpo`: group sampling, the policy loss and the rewards.

LLaMA-Factory has no GRPO, so these keys are lf-ray's own; each maps onto TRL's `GRPOConfig` (see
`train.arguments`), where the TRL name is given. Sampling reads the generating keys (`temperature`, `top_p`,
`top_k`, `repetition_penalty`) as LLaMA-Factory's PPO does. The reward model keys are LLaMA-Factory's
(`reward_model`, `reward_model_type`, in `rlhf_args`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GRPOLoss = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "vespo"]


@dataclass
class GRPOArguments:
    """Arguments pertaining to GRPO training (lf-ray's own, on TRL's GRPOTrainer)."""

    reward_funcs: str | list[str] | None = field(
        default=None,
        metadata={
            "help": "GRPO's reward functions, comma-separated: built-ins (exact_match, numeric_match, format_match, "
            "length_penalty) or `module:function` import paths (the module importable on every Ray worker: lf-ray "
            "adds the directory you run from). A function gets `prompts`, `completions`, `completion_ids` and "
            "`answer` (the dataset's response) lists and returns one number per completion."
        },
    )
    reward_weights: str | list[float] | None = field(
        default=None,
        metadata={
            "help": "One weight per reward (reward_funcs first, then reward_model); default: all 1. "
            "TRL's `reward_weights`."
        },
    )
    reward_format_pattern: str | None = field(
        default=None,
        metadata={
            "help": "The regular expression the `format_match` reward asks a whole completion to match "
            "(`re.fullmatch`, DOTALL), e.g. `<answer>\\d+</answer>`."
        },
    )
    num_generations: int = field(
        default=8,
        metadata={
            "help": "Completions sampled per prompt (the group whose rewards are normalised together). "
            "per_device_train_batch_size × workers × gradient_accumulation_steps must be a multiple of it."
        },
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={"help": "Keep the last this many prompt tokens (default: the prompt as cutoff_len left it)."},
    )
    max_completion_length: int = field(default=256, metadata={"help": "The most tokens sampled per completion."})
    grpo_beta: float = field(
        default=0.0,
        metadata={"help": "The KL coefficient against the reference model (0: no reference model). TRL's `beta`."},
    )
    grpo_epsilon: float = field(
        default=0.2, metadata={"help": "The lower clipping range of the policy ratio. TRL's `epsilon`."}
    )
    grpo_epsilon_high: float | None = field(
        default=None,
        metadata={"help": "The upper clipping range (default: grpo_epsilon; DAPO uses 0.28). TRL's `epsilon_high`."},
    )
    grpo_loss_type: GRPOLoss = field(
        default="dapo",
        metadata={
            "help": "How token losses are aggregated: grpo (per sequence), dr_grpo (by a constant), dapo / bnpo "
            "(by the active tokens of the global / local batch), cispo, sapo, vespo. TRL's `loss_type`."
        },
    )
    grpo_scale_rewards: Literal["group", "batch", "none"] = field(
        default="group",
        metadata={
            "help": "Scale advantages by the reward std of the group, of the batch, or not. TRL's `scale_rewards`."
        },
    )
    grpo_num_iterations: int = field(
        default=1, metadata={"help": "Optimisation passes over each batch of completions. TRL's `num_iterations`."}
    )
    grpo_vllm_server: str | None = field(
        default=None,
        metadata={
            "help": "The URL of a TRL rollout server (`trl vllm-serve --model ...` on GPUs of its own) that samples "
            "the completions, the trainers sending it their weights after each step. `infer_backend: vllm` instead "
            "runs vLLM inside each training worker, on its GPU (TRL's colocate mode). Both need CUDA workers."
        },
    )
    mask_truncated_completions: bool = field(
        default=False,
        metadata={"help": "Leave completions cut at max_completion_length out of the loss (DAPO). TRL's key."},
    )
