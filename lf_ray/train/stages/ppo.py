"""Stage ppo: LLaMA-Factory's PPO, a value head trained beside the policy, in lf-ray's own loop.

TRL dropped the PPO trainer LLaMA-Factory runs on (TRL 0.9's `PPOTrainer`), so this module is that loop, with
LLaMA-Factory's keys and TRL 0.9's arithmetic (`train.ppo_math`), inside the Ray Train worker group (DDP). Each
step, every worker:

1. takes its share of the step's prompts: per_device_train_batch_size × gradient_accumulation_steps ×
   ppo_buffer_size of them, from one shuffled order of the whole prompt split that all workers share (seeded by
   epoch), so a restart continues at the step's prompts;
2. samples a response to each (LLaMA-Factory's generating keys, the template's stop words), `per_device_train_
   batch_size` prompts at a time, and scores prompt + response with the reward model (`model.reward`, or a
   served one: `reward_model_type: api`) and/or `reward_funcs`, weighted by `reward_weights`; `ppo_score_norm`
   normalises scores by their running mean and deviation over all workers;
3. computes log-probs and values (no gradient), the reference's log-probs (the adapter switched off under LoRA,
   else `ref_model` or a frozen copy), per-token rewards with the adaptive KL penalty (`ppo_target`), and GAE
   advantages (`ppo_whiten_rewards`);
4. runs `ppo_epochs` passes over the rollout in shuffled mini-batches of `per_device_train_batch_size`, one
   optimizer step per gradient_accumulation_steps mini-batches, then steps the learning-rate schedule once.

`max_steps` counts PPO steps (LLaMA-Factory's meaning); without it, `num_train_epochs` × the steps one pass over
the prompts takes. The value head (TRL's: dropout 0.1, then a linear layer) is saved beside the model as
`value_head.safetensors` under LLaMA-Factory's names, and loaded from the model's or last adapter's folder when one
is there. Checkpoints hold the model, value head, optimizer, schedule, random states and the KL controller, so a
restarted worker group resumes at its step (LLaMA-Factory's PPO cannot resume).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import Trainer, TrainerState
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import TrainOutput, speed_metrics

from lf_ray.errors import TrainError
from lf_ray.train.ppo_math import (
    AdaptiveKLController,
    RunningMoments,
    generalized_advantages,
    ppo_loss,
    token_rewards,
)
from lf_ray.train.rewards import api_reward, model_reward, reward_functions, with_text_columns
from lf_ray.train.stages.base import StageContext, reference_model, trainer_callbacks

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

VALUE_HEAD_FILE = "value_head.safetensors"
PPO_STATE_FILE = "ppo_state.json"


class ValueHead(nn.Module):
    """TRL's value head: dropout 0.1 on the last hidden state, then one linear output (`v_head.summary.*`)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.1)
        self.summary = nn.Linear(hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.summary(self.dropout(hidden_states.to(self.summary.weight.dtype))).squeeze(-1)


class PolicyWithValueHead(nn.Module):
    """The policy and its value head as one module, so one DDP wrapper synchronises both."""

    def __init__(self, policy: nn.Module, v_head: ValueHead) -> None:
        super().__init__()
        self.policy, self.v_head = policy, v_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.policy(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False
        )
        return out.logits, self.v_head(out.hidden_states[-1])


@dataclass
class Rollout:
    """One step's samples on this worker: prompt and response ids, the weighted score of each, and the
    per-source rewards and response statistics to log."""

    queries: list[list[int]]
    responses: list[list[int]]
    scores: torch.Tensor
    logged: dict[str, float]


RewardSource = tuple[str, Callable[..., list[float | None]], float]


class PPOTrainer(Trainer):
    """A `transformers.Trainer` whose `train()` is LLaMA-Factory's PPO loop (see the module docstring); saving,
    callbacks, logging, the optimizer and the schedule are the Trainer's."""

    def __init__(
        self,
        *,
        ctx: StageContext,
        rewards: list[RewardSource],
        generation: dict[str, Any],
    ) -> None:
        super().__init__(
            model=ctx.model,
            args=ctx.training_args,
            train_dataset=with_text_columns(ctx.train_dataset, ctx.tokenizer),
            processing_class=ctx.tokenizer,
            callbacks=trainer_callbacks(ctx),
            optimizers=ctx.optimizers,
        )
        ft = ctx.cfg.finetuning
        self.ppo_epochs = ft.ppo_epochs
        self.buffer_size = ft.ppo_buffer_size
        self.whiten_rewards = ft.ppo_whiten_rewards
        self.pad_token_id = ctx.pad_token_id
        self.rewards, self.generation = rewards, generation
        self.ref_model = reference_model(ctx)
        if self.ref_model is not None and not getattr(self.ref_model, "is_quantized", False):
            self.ref_model.to(self.args.device)
        self.v_head = ValueHead(ctx.model.config.hidden_size).to(self.args.device)
        _load_value_head(self.v_head, _value_head_folder(ctx.cfg))
        self.kl_controller = AdaptiveKLController(target=ft.ppo_target)
        self.score_moments = RunningMoments() if ft.ppo_score_norm else None

    # -- the loop ----------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | None = None, **kwargs: Any) -> TrainOutput:
        args = self.args
        per_worker = args.per_device_train_batch_size * args.gradient_accumulation_steps * self.buffer_size
        steps_per_epoch = len(self.train_dataset) // (per_worker * args.world_size)
        if steps_per_epoch == 0:
            raise TrainError(
                f"stage ppo takes {per_worker * args.world_size} prompts a step (per_device_train_batch_size "
                f"{args.per_device_train_batch_size} × gradient_accumulation_steps {args.gradient_accumulation_steps} "
                f"× ppo_buffer_size {self.buffer_size} × {args.world_size} workers), but the dataset has "
                f"{len(self.train_dataset)}; use more prompts or a smaller batch"
            )
        max_steps = args.max_steps if args.max_steps > 0 else math.ceil(args.num_train_epochs * steps_per_epoch)
        model = self._prepare(max_steps, steps_per_epoch, per_worker)
        if resume_from_checkpoint:
            self._resume(resume_from_checkpoint)
        self.control = self.callback_handler.on_train_begin(args, self.state, self.control)
        start, first_step, window, losses = time.time(), self.state.global_step, defaultdict(list), []
        while self.state.global_step < max_steps and not self.control.should_training_stop:
            step = self.state.global_step
            rollout = self._rollout(self._prompts(step, steps_per_epoch, per_worker), step)
            stats = self._optimize(model, rollout, step)
            losses.append(stats["loss"])
            for key, value in stats.items():
                window[key].append(value)
            self.state.global_step += 1
            self.state.epoch = self.state.global_step / steps_per_epoch
            self.control = self.callback_handler.on_step_end(args, self.state, self.control)
            if self._should_log(max_steps):
                self.log({key: sum(values) / len(values) for key, values in window.items()})
                window.clear()
            if self._should_save(steps_per_epoch, max_steps):
                self._save_checkpoint(model, trial=None)
                self.control = self.callback_handler.on_save(args, self.state, self.control)
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        done = self.state.global_step - first_step
        metrics = speed_metrics("train", start, num_samples=done * per_worker * args.world_size, num_steps=done)
        metrics.update(train_loss=sum(losses) / max(len(losses), 1), epoch=self.state.epoch or 0.0)
        self.log(metrics)
        return TrainOutput(self.state.global_step, metrics["train_loss"], metrics)

    def _prepare(self, max_steps: int, steps_per_epoch: int, per_worker: int) -> nn.Module:
        """The optimizer (the Trainer's, plus the value head), the schedule over `max_steps` PPO steps, the state,
        and the policy with its value head as one module, wrapped for DDP."""
        args = self.args
        self.create_optimizer()
        head = self.v_head.summary  # the weight decays and the bias does not, as the Trainer groups parameters
        self.optimizer.add_param_group({"params": [head.weight], "weight_decay": args.weight_decay})
        self.optimizer.add_param_group({"params": [head.bias], "weight_decay": 0.0})
        self.create_scheduler(max_steps, self.optimizer)
        model, self.optimizer = self.accelerator.prepare(PolicyWithValueHead(self.model, self.v_head), self.optimizer)
        self.model_wrapped = model
        self.state = TrainerState(
            max_steps=max_steps,
            num_train_epochs=math.ceil(max_steps / steps_per_epoch),
            train_batch_size=per_worker,
            is_local_process_zero=self.is_local_process_zero(),
            is_world_process_zero=self.is_world_process_zero(),
            stateful_callbacks=[
                callback
                for callback in [*self.callback_handler.callbacks, self.control]
                if isinstance(callback, ExportableState)
            ],
        )
        self.state.compute_steps(args, max_steps)  # logging / save steps given as a share of the run
        if args.gradient_checkpointing:  # the Trainer's own loop would switch it on
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)
        return model

    def _prompts(self, step: int, steps_per_epoch: int, per_worker: int) -> list[dict[str, Any]]:
        """This worker's prompts of `step`: its slice of the step's block of one seeded order of the split."""
        epoch, index = divmod(step, steps_per_epoch)
        rows = len(self.train_dataset)
        if self.args.train_sampling_strategy == "sequential":
            order = torch.arange(rows)
        else:
            order = torch.randperm(rows, generator=torch.Generator().manual_seed(self.args.seed + epoch))
        first = (index * self.args.world_size + self.args.process_index) * per_worker
        return self.train_dataset.select(order[first : first + per_worker].tolist()).to_list()

    @torch.no_grad()
    def _rollout(self, rows: list[dict[str, Any]], step: int) -> Rollout:
        """Responses to `rows`, sampled `per_device_train_batch_size` prompts at a time, and their scores."""
        torch.manual_seed(self.args.seed + step * self.args.world_size + self.args.process_index)
        self.model.eval()
        queries = [list(row["input_ids"]) for row in rows]
        responses: list[list[int]] = []
        size = self.args.per_device_train_batch_size
        for first in range(0, len(queries), size):
            chunk = queries[first : first + size]
            input_ids, mask = _padded(chunk, self.pad_token_id, left=True, device=self.args.device)
            with self.accelerator.autocast():
                output = self.model.generate(input_ids=input_ids, attention_mask=mask, **self.generation)
            responses += [self._response(ids) for ids in output[:, input_ids.shape[1] :].tolist()]
        self.model.train()
        scores, logged = self._score(rows, queries, responses)
        limit = self.generation.get("max_new_tokens")
        logged["completions/mean_length"] = sum(map(len, responses)) / len(responses)
        if limit:
            eos = set(self.generation["eos_token_id"])
            logged["completions/clipped_ratio"] = sum(len(r) >= limit and r[-1] not in eos for r in responses) / len(
                responses
            )
        return Rollout(queries, responses, scores, logged)

    def _response(self, ids: list[int]) -> list[int]:
        """A sampled response without its right padding: up to its last non-pad token, plus the end-of-sequence
        token when it is the pad token; an empty response keeps one token (LLaMA-Factory's `get_inputs`)."""
        kept = [index for index, token in enumerate(ids) if token != self.pad_token_id]
        if not kept:
            return ids[:1]
        end = kept[-1] + (2 if self.pad_token_id in self.generation["eos_token_id"] else 1)
        return ids[:end]

    def _score(
        self, rows: list[dict[str, Any]], queries: list[list[int]], responses: list[list[int]]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted sum of every reward source's values (None counts 0), and each source's mean."""
        columns = {key: [row[key] for row in rows] for key in ("prompt", "answer", "labels")}
        keywords = {
            "prompts": columns["prompt"],
            "completions": self.processing_class.batch_decode(responses, skip_special_tokens=True),
            "completion_ids": responses,
            "answer": columns["answer"],
            "input_ids": queries,
            "labels": columns["labels"],
            "attention_mask": [[1] * len(query) for query in queries],
            "trainer_state": self.state,
            "log_extra": _ignored,
            "log_metric": _ignored,
        }
        scores = torch.zeros(len(responses))
        logged = {}
        for name, func, weight in self.rewards:
            values = torch.tensor([math.nan if v is None else float(v) for v in func(**keywords)])
            logged[f"rewards/{name}/mean"] = values.nanmean().item()
            scores += weight * values.nan_to_num(0.0)
        return scores, logged

    def _optimize(self, model: nn.Module, rollout: Rollout, step: int) -> dict[str, float]:
        """Rewards, advantages and `ppo_epochs` passes of clipped PPO updates over the rollout; the step's
        statistics averaged over the workers."""
        args = self.args
        device = args.device
        scores = rollout.scores.to(device)
        all_scores = self.accelerator.gather(scores)  # every worker's raw scores: the moments and reward_std
        if self.score_moments is not None:
            self.score_moments.update(all_scores)
            scores = (scores - self.score_moments.mean) / (self.score_moments.std + torch.finfo(scores.dtype).eps)
        input_ids, attention_mask, mask = _sequences(rollout.queries, rollout.responses, self.pad_token_id, device)
        old_logprobs, old_values = self._forward_no_grad(model, input_ids, attention_mask)
        ref_logprobs = self._reference_logprobs(input_ids, attention_mask)
        kl_coef = self.kl_controller.value
        rewards, kl = token_rewards(scores, old_logprobs, ref_logprobs, mask, kl_coef)
        advantages, returns = generalized_advantages(old_values, rewards, mask, whiten_rewards=self.whiten_rewards)

        totals: dict[str, list[float]] = defaultdict(list)
        rows, mini = len(rollout.queries), args.per_device_train_batch_size
        backward = mini * args.gradient_accumulation_steps
        generator = torch.Generator().manual_seed(args.seed + step)
        for _ in range(self.ppo_epochs):
            order = torch.randperm(rows, generator=generator)
            for first in range(0, rows, backward):
                batches = order[first : first + backward].split(mini)
                for index, batch in enumerate(batches):
                    syncs = index == len(batches) - 1
                    with nullcontext() if syncs else self.accelerator.no_sync(model), self.accelerator.autocast():
                        logits, values = model(input_ids[batch], attention_mask[batch])
                        logprobs = _token_logprobs(logits, input_ids[batch])
                        loss, stats = ppo_loss(
                            logprobs,
                            values[:, :-1].float(),
                            old_logprobs[batch],
                            old_values[batch],
                            advantages[batch],
                            returns[batch],
                            mask[batch],
                        )
                    self.accelerator.backward(loss / len(batches))
                    for key, value in stats.items():
                        totals[key].append(value)
                if args.max_grad_norm:
                    self.accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
        self.lr_scheduler.step()
        all_kl = self.accelerator.gather(kl)
        self.kl_controller.update(all_kl.mean().item(), len(all_kl))
        local = {key: sum(values) / len(values) for key, values in totals.items()}
        local |= rollout.logged
        local |= {"reward": rollout.scores.mean().item(), "kl": kl.mean().item()}
        logged = self._mean_over_workers(local)
        logged["reward_std"] = all_scores.std().item()
        logged["kl_coef"] = kl_coef
        logged["learning_rate"] = self.lr_scheduler.get_last_lr()[0]
        return logged

    def _forward_no_grad(
        self, model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The policy's log-probs of each next token and the value head's values, mini-batch by mini-batch."""
        unwrapped = self.accelerator.unwrap_model(model)
        logprobs, values = [], []
        with torch.no_grad(), self.accelerator.autocast():
            for batch in torch.arange(len(input_ids)).split(self.args.per_device_train_batch_size):
                logits, value = unwrapped(input_ids[batch], attention_mask[batch])
                logprobs.append(_token_logprobs(logits, input_ids[batch]))
                values.append(value[:, :-1].float())
        return torch.cat(logprobs), torch.cat(values)

    def _reference_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The reference's log-probs: `ref_model` or the frozen copy, else the policy with its adapter off."""
        reference = self.ref_model if self.ref_model is not None else self.model
        logprobs = []
        adapter_off = reference.disable_adapter() if reference is self.model else nullcontext()
        with torch.no_grad(), self.accelerator.autocast(), adapter_off:
            for batch in torch.arange(len(input_ids)).split(self.args.per_device_train_batch_size):
                logits = reference(input_ids=input_ids[batch], attention_mask=attention_mask[batch], use_cache=False)
                logprobs.append(_token_logprobs(logits.logits, input_ids[batch]))
        return torch.cat(logprobs)

    def _mean_over_workers(self, stats: dict[str, float]) -> dict[str, float]:
        keys = sorted(stats)
        values = torch.tensor([stats[key] for key in keys], device=self.args.device, dtype=torch.float64)
        means = self.accelerator.gather(values.unsqueeze(0)).nanmean(dim=0)
        return dict(zip(keys, means.tolist(), strict=True))

    def _should_log(self, max_steps: int) -> bool:
        step = self.state.global_step
        first = step == 1 and self.args.logging_first_step
        return first or step % self.state.logging_steps == 0 or step == max_steps

    def _should_save(self, steps_per_epoch: int, max_steps: int) -> bool:
        strategy, step = self.args.save_strategy, self.state.global_step
        if strategy == "steps":
            return step % self.state.save_steps == 0
        return strategy == "epoch" and (step % steps_per_epoch == 0 or step == max_steps)

    # -- saving and resuming ------------------------------------------------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The model as the Trainer saves it, and the value head beside it."""
        from safetensors.torch import save_file

        super()._save(output_dir, state_dict=state_dict)
        output_dir = output_dir or self.args.output_dir
        weights = {
            f"v_head.{name}": tensor.detach().cpu().contiguous() for name, tensor in self.v_head.state_dict().items()
        }
        save_file(weights, os.path.join(output_dir, VALUE_HEAD_FILE), metadata={"format": "pt"})

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """The Trainer's checkpoint (model, value head, optimizer, schedule, random states, state), and the KL
        controller and running score moments."""
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            moments = self.score_moments
            state = {"kl_coef": self.kl_controller.value, "score_moments": None if moments is None else vars(moments)}
            (folder / PPO_STATE_FILE).write_text(json.dumps(state))

    def _resume(self, checkpoint: str) -> None:
        self._load_from_checkpoint(checkpoint)
        _load_value_head(self.v_head, checkpoint)
        self._load_optimizer_and_scheduler(checkpoint)
        self._load_rng_state(checkpoint)
        resumed = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
        self.state.global_step, self.state.epoch = resumed.global_step, resumed.epoch
        self.state.log_history = resumed.log_history
        saved = json.loads(Path(checkpoint, PPO_STATE_FILE).read_text())
        self.kl_controller.value = saved["kl_coef"]
        if self.score_moments is not None and saved["score_moments"]:
            self.score_moments = RunningMoments(**saved["score_moments"])


def _ignored(*args: Any, **kwargs: Any) -> None:
    """TRL's `log_extra` / `log_metric` for reward functions: ppo logs the means of the rewards only."""


def _padded(rows: list[list[int]], pad: int, *, left: bool, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = [[pad] * (width - len(r)) + r if left else r + [pad] * (width - len(r)) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) if left else [1] * len(r) + [0] * (width - len(r)) for r in rows]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def _sequences(
    queries: list[list[int]], responses: list[list[int]], pad: int, device: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompt + response, right-padded, with their attention mask, and the mask of the positions whose next token
    is a response token (the shifted positions log-probs and values are taken at)."""
    input_ids, attention_mask = _padded(
        [q + r for q, r in zip(queries, responses, strict=True)], pad, left=False, device=device
    )
    mask = torch.zeros(len(queries), input_ids.shape[1] - 1, device=device)
    for row, (query, response) in enumerate(zip(queries, responses, strict=True)):
        mask[row, len(query) - 1 : len(query) - 1 + len(response)] = 1
    return input_ids, attention_mask, mask


def _token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """The log-probability of each next token: (rows, length − 1)."""
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logprobs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def _value_head_folder(cfg: LfRayConfig) -> str:
    """Where LLaMA-Factory looks for a trained value head: the last adapter's folder, else the model's."""
    adapters = cfg.model.adapter_name_or_path or []
    return adapters[-1] if adapters else cfg.model.model_name_or_path


def _load_value_head(v_head: ValueHead, folder: str) -> None:
    """`folder`'s value head into `v_head`, when the folder holds one."""
    from safetensors.torch import load_file

    path = Path(folder) / VALUE_HEAD_FILE
    if path.is_file():
        weights = load_file(str(path))
        v_head.load_state_dict({name.removeprefix("v_head."): tensor for name, tensor in weights.items()})


def reward_sources(ctx: StageContext) -> list[RewardSource]:
    """`reward_funcs`, then the reward model (loaded, or served), each with its `reward_weights` entry."""
    ft = ctx.cfg.finetuning
    # ppo's responses end at `max_new_tokens` (grpo's at `max_completion_length`): the length penalty's unit
    funcs = reward_functions(dataclasses.replace(ft, max_completion_length=ctx.cfg.generating.max_new_tokens))
    if ctx.reward_model is not None:
        if not getattr(ctx.reward_model, "is_quantized", False):
            ctx.reward_model.to(ctx.training_args.device)
        funcs.append(model_reward(ctx.reward_model, ctx.pad_token_id, None))
    elif ft.reward_model_type == "api" and ft.reward_model:
        funcs.append(api_reward(ft.reward_model, ctx.tokenizer, None))
    weights = ft.reward_weights or [1.0] * len(funcs)
    return [(func.__name__, func, float(weight)) for func, weight in zip(funcs, weights, strict=True)]


def generation_settings(ctx: StageContext) -> dict[str, Any]:
    """`generate` keyword arguments from LLaMA-Factory's generating keys, stopping at the template's stop words."""
    kwargs = ctx.cfg.generating.generation_kwargs()
    if not kwargs["do_sample"]:  # transformers warns about sampling settings that greedy decoding ignores
        kwargs = {k: v for k, v in kwargs.items() if k not in ("temperature", "top_p", "top_k")}
    stop = ctx.template.get_stop_token_ids(ctx.tokenizer) if ctx.template else [ctx.tokenizer.eos_token_id]
    return {**kwargs, "eos_token_id": stop, "pad_token_id": ctx.pad_token_id}


def build_trainer(ctx: StageContext) -> PPOTrainer:
    return PPOTrainer(ctx=ctx, rewards=reward_sources(ctx), generation=generation_settings(ctx))
