"""Stage grpo: online RL with group-relative advantages (TRL's `GRPOTrainer`) on a prompt dataset.

Rows are the unsupervised processor's: `input_ids` is the prompt in the template's tokens (as chat and predict
see it) and `labels` the reference response. Every worker holds the whole prompt split (prompt sets are small) and
TRL's `RepeatSampler` deals each prompt's `num_generations` completions across the worker group, so a group's
rewards are normalised together wherever they were sampled. The trainer:

- samples from the prompt's ids (`PromptIdsGRPOTrainer`: TRL would re-render a text prompt with the tokenizer's
  own chat template, not LLaMA-Factory's), keeping the last `max_prompt_length` tokens;
- scores completions with `reward_funcs` (`train.rewards`) and the reward model (`model.reward`, or a served one:
  `rewards.api_reward`), weighted by `reward_weights`; the functions get `prompts` (the decoded prompt),
  `completions`, `completion_ids` and `answer` (the decoded reference);
- computes the KL term against the adapter-off policy under LoRA, else TRL's frozen copy (`grpo_beta` > 0).
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer

from lf_ray.train.rewards import api_reward, model_reward, prompt_tail, reward_functions, with_text_columns
from lf_ray.train.stages.base import AdapterOffReference, StageContext, trainer_callbacks


class PromptIdsGRPOTrainer(AdapterOffReference, GRPOTrainer):
    """GRPOTrainer that samples from the rows' template-encoded prompt ids instead of tokenizing `prompt` text."""

    def __init__(self, *args: Any, max_prompt_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_prompt_length = max_prompt_length

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._prompt_ids = [prompt_tail(row["input_ids"], self.max_prompt_length) for row in inputs]
        return super()._generate_and_score_completions(inputs)

    def _tokenize_prompts(self, prompts: list[Any]) -> tuple[list[list[int]], None, dict[str, Any]]:
        return self._prompt_ids, None, {}


def build_trainer(ctx: StageContext) -> GRPOTrainer:
    ft = ctx.cfg.finetuning
    rewards = reward_functions(ft)
    if ctx.reward_model is not None:
        if not getattr(ctx.reward_model, "is_quantized", False):  # bitsandbytes placed it already, and refuses .to
            ctx.reward_model.to(ctx.training_args.device)
        rewards.append(model_reward(ctx.reward_model, ctx.pad_token_id, ft.max_prompt_length))
    elif ft.reward_model_type == "api" and ft.reward_model:
        rewards.append(api_reward(ft.reward_model, ctx.tokenizer, ft.max_prompt_length))
    return PromptIdsGRPOTrainer(
        model=ctx.model,
        reward_funcs=rewards,
        args=ctx.training_args,
        train_dataset=with_text_columns(ctx.train_dataset, ctx.tokenizer),
        eval_dataset=None if ctx.eval_dataset is None else with_text_columns(ctx.eval_dataset, ctx.tokenizer),
        processing_class=ctx.tokenizer,
        callbacks=trainer_callbacks(ctx),
        optimizers=ctx.optimizers,
        max_prompt_length=ft.max_prompt_length,
    )
