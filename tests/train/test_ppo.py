"""Stage ppo without Ray: TRL 0.9's PPO arithmetic on hand-computed values, the keys and what they refuse, and the
trainer on the tiny Llama: a reward rises, the value head is saved, and a resumed run repeats a straight one."""

from __future__ import annotations

import statistics

import datasets
import pytest
import torch
from transformers import TrainerCallback

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError, TrainError
from lf_ray.model.loader import load_causal_lm
from lf_ray.model.loading import load_model
from lf_ray.train import ppo_math
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.ppo_math import (
    AdaptiveKLController,
    RunningMoments,
    generalized_advantages,
    masked_whiten,
    ppo_loss,
    token_rewards,
)
from lf_ray.train.stages import StageContext, build_trainer
from lf_ray.train.stages.ppo import VALUE_HEAD_FILE
from tests.train.stage_runs import lora, stage_config, train

LOW_IDS = "rewards/tests.train.grpo_rewards:low_ids/mean"


def test_token_rewards_put_the_kl_penalty_on_every_token_and_the_score_on_the_last():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    rewards, kl = token_rewards(torch.tensor([2.0, -1.0]), logprobs, ref, mask, kl_coef=0.5)
    assert rewards.tolist() == [[-0.25, 0.0, 0.5 + 2.0], [0.0, -1.0, 0.0]]
    assert kl.tolist() == [-0.5, 0.0]  # the first row: 0.5 + 0 − 1; the second: its one response token


def test_generalized_advantages_are_gae_with_lambda_095_whitened_and_returns_are_not():
    values = torch.tensor([[0.5, 0.25, 1.0]])
    rewards = torch.tensor([[0.0, 1.0, 2.0]])
    mask = torch.ones(1, 3)
    advantages, returns = generalized_advantages(values, rewards, mask)
    a2 = 2.0 - 1.0
    a1 = 1.0 + 1.0 - 0.25 + 0.95 * a2
    a0 = 0.0 + 0.25 - 0.5 + 0.95 * a1
    assert returns[0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.25, a2 + 1.0])
    raw = torch.tensor([a0, a1, a2])
    assert advantages[0].tolist() == pytest.approx(((raw - raw.mean()) / raw.std()).tolist(), abs=1e-6)
    whitened = masked_whiten(rewards, mask, shift_mean=False)
    assert whitened.mean().item() == pytest.approx(1.0) and whitened.std().item() == pytest.approx(1.0, abs=1e-6)


def test_the_adaptive_kl_coefficient_moves_at_most_20_percent_of_the_error_per_horizon():
    controller = AdaptiveKLController(0.2, target=6.0)
    controller.update(current_kl=12.0, sequences=1000)  # error clipped to +0.2
    assert controller.value == pytest.approx(0.2 * (1 + 0.2 * 1000 / 10_000))
    controller.update(current_kl=4.5, sequences=10_000)  # error −0.25 clipped to −0.2
    assert controller.value == pytest.approx(0.2 * 1.02 * 0.8)


def test_running_moments_are_the_mean_and_deviation_of_every_score_seen():
    moments = RunningMoments()
    batches = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, -4.0]), torch.tensor([0.5, 0.5, 7.0, 2.0])]
    for batch in batches:
        moments.update(batch)
    seen = torch.cat(batches).double()
    assert (moments.mean, moments.std) == pytest.approx((seen.mean().item(), seen.std().item()))


def test_the_ppo_loss_clips_the_ratio_and_the_value_and_skips_a_runaway_batch():
    mask = torch.ones(1, 2)
    old = torch.zeros(1, 2)
    advantages, returns = torch.tensor([[1.0, -1.0]]), torch.tensor([[1.0, 1.0]])
    logprobs = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 (clipped to 1.2 for a gain) and 0.5 (to 0.8)
    values = torch.tensor([[0.5, 0.1]])  # the first, clipped to 0.2 from its old value 0, is further from its return
    loss, stats = ppo_loss(logprobs, values, old, old, advantages, returns, mask)
    policy = (-1.2 + 0.8) / 2
    value = 0.5 * ((0.2 - 1.0) ** 2 + (0.1 - 1.0) ** 2) / 2
    assert (stats["policy_loss"], stats["value_loss"]) == pytest.approx((policy, value))
    assert loss.item() == pytest.approx(policy + ppo_math.VALUE_LOSS_COEF * value)
    assert stats["clip_ratio"] == 1.0 and stats["value_clip_ratio"] == 0.5
    runaway, _ = ppo_loss(torch.full((1, 2), 3.0), values, old, old, advantages, returns, mask)  # ratio e³ > 10
    assert runaway.item() == 0.0


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["deepspeed=examples/deepspeed/ds_z2_config.json"], "`stage: ppo` runs lf-ray's own PPO loop on DDP"),
        (["eval_strategy=steps", "val_size=0.1"], "`eval_strategy`: stage ppo does not evaluate while it trains"),
        (["ppo_epochs=0"], "`ppo_epochs: 0`"),
        (["save_strategy=best"], "`save_strategy: best` needs evaluation"),
        (["neftune_noise_alpha=5"], "`neftune_noise_alpha`: acts in the Trainer's own training loop"),
        (
            ["enable_liger_kernel=true", "train_sampling_strategy=group_by_length", "logging_strategy=epoch"],
            "`enable_liger_kernel`, `train_sampling_strategy: group_by_length`, `logging_strategy: epoch`: act in",
        ),
    ],
)
def test_what_lf_rays_ppo_loop_does_not_run_is_refused_at_parse_time(keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        stage_config("ppo", *keys)


def test_ppo_keys_belong_to_ppo_and_the_reward_keys_to_grpo_and_ppo():
    with pytest.raises(ConfigError, match=r"`ppo_epochs` \(ppo\)"):
        stage_config("sft", "ppo_epochs=2")
    with pytest.raises(ConfigError, match=r"`max_completion_length` \(grpo\)"):
        stage_config("ppo", "max_completion_length=16")
    cfg = stage_config("ppo", "reward_funcs=numeric_match", "reward_model=saves/rm", "reward_weights=1,0.5")
    assert cfg.finetuning.reward_funcs == ["numeric_match"] and cfg.finetuning.reward_weights == [1.0, 0.5]


def _ppo(*keys: str):
    return stage_config(
        "ppo",
        "reward_funcs=tests.train.grpo_rewards:low_ids",
        "per_device_train_batch_size=16",
        "gradient_accumulation_steps=2",
        "ppo_epochs=4",
        "ppo_score_norm=true",
        "temperature=1.0",
        "top_p=1.0",
        "top_k=0",
        *keys,
    )


def test_ppo_learns_a_reward_and_saves_its_value_head(encoded, tiny_llama_path, tmp_path):
    """Full fine-tuning, 32 prompts a step, 4 PPO epochs of 2 mini-batches of 16: the share of low token ids rises
    against a frozen copy as the reference; the value head is saved beside the model under LLaMA-Factory's names."""
    tokenizer, rows = encoded("ppo")
    cfg = _ppo("finetuning_type=full", "learning_rate=3e-3", "max_steps=20")
    trainer = train(cfg, load_causal_lm(tiny_llama_path), tokenizer, rows[:64], tmp_path)
    logs = [entry for entry in trainer.state.log_history if LOW_IDS in entry]
    rewards = [entry[LOW_IDS] for entry in logs]
    assert len(rewards) == 20 and rewards == [entry["reward"] for entry in logs]
    assert statistics.mean(rewards[-5:]) > statistics.mean(rewards[:5]) + 0.08, rewards
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-5) and logs[-1]["kl"] > 0.1
    assert all(entry["completions/mean_length"] <= 8 for entry in logs)
    assert {"value_loss", "policy_loss", "kl_coef", "clip_ratio", "loss", "learning_rate"} <= set(logs[-1])
    trainer.save_model(str(tmp_path / "out"))
    assert (tmp_path / "out" / "model.safetensors").is_file()
    from safetensors.torch import load_file

    head = load_file(str(tmp_path / "out" / VALUE_HEAD_FILE))
    assert sorted(head) == ["v_head.summary.bias", "v_head.summary.weight"]
    assert torch.equal(head["v_head.summary.weight"], trainer.v_head.summary.weight.detach())


def test_ppo_logs_every_logging_steps_the_first_step_when_asked_and_the_last(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("ppo")
    keys = ("per_device_train_batch_size=4", "gradient_accumulation_steps=1", "ppo_epochs=1", "logging_steps=2")
    logged = []
    for first in ("false", "true"):
        cfg = _ppo(*keys, "max_steps=3", f"logging_first_step={first}")
        trainer = train(cfg, load_causal_lm(tiny_llama_path), tokenizer, rows[:16], tmp_path / first)
        logged.append([entry["step"] for entry in trainer.state.log_history if "reward" in entry])
    assert logged == [[2, 3], [1, 2, 3]]


class StopAfter(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step == self.step


def test_a_resumed_ppo_run_repeats_the_straight_run(encoded, tiny_llama_path, tmp_path):
    """LoRA (the reference: the adapter switched off). 6 steps straight, and 4 steps + a resume from checkpoint-4 to
    6 (prompts, samples, optimizer, schedule, KL controller and score moments restored): the same rewards and
    losses at steps 5 and 6."""
    tokenizer, rows = encoded("ppo")
    cfg = _ppo(
        "max_steps=6",
        "save_strategy=steps",
        "save_steps=4",
        "learning_rate=1e-2",
        "lr_scheduler_type=linear",
        "per_device_train_batch_size=8",
        "ppo_buffer_size=2",  # 8 × 2 accumulation steps × 2 buffers: 32 prompts a step
        "ppo_target=3.0",
    )

    def trainer(output_dir, callbacks=()):
        args = build_training_arguments(cfg, output_dir=str(output_dir))
        model = lora(load_causal_lm(tiny_llama_path))
        dataset = datasets.Dataset.from_list(rows[:64])
        return build_trainer(StageContext(cfg, model, tokenizer, args, dataset, callbacks=list(callbacks)))

    straight = trainer(tmp_path / "a")
    straight.train()
    trainer(tmp_path / "b", [StopAfter(4)]).train()  # a crash after the checkpoint of step 4
    checkpoint = tmp_path / "b" / "checkpoint-4"
    assert {VALUE_HEAD_FILE, "optimizer.pt", "scheduler.pt", "ppo_state.json"} <= {p.name for p in checkpoint.iterdir()}
    resumed = trainer(tmp_path / "b")
    resumed.train(resume_from_checkpoint=str(checkpoint))

    def last_steps(trainer) -> list[float]:
        logged = [e for e in trainer.state.log_history if "reward" in e and e["step"] in (5, 6)]
        return [e[key] for e in logged for key in ("reward", "loss")]

    assert len(last_steps(straight)) == 4 and last_steps(resumed) == pytest.approx(last_steps(straight), rel=1e-4)
    assert [e["step"] for e in resumed.state.log_history if "reward" in e] == [1, 2, 3, 4, 5, 6]
    last = resumed.state.log_history[-2]
    assert last["kl"] > 0  # the adapter moved the policy away from its reference
    assert last["kl_coef"] < 0.2  # the KL stays below ppo_target: the penalty's coefficient shrinks

    # the saved adapter (the value head beside it) loads as eval, chat and serve load one: the trained policy
    resumed.save_model(str(tmp_path / "out"))
    inference = prepare_config(
        None,
        [
            f"model_name_or_path={tiny_llama_path}",
            f"adapter_name_or_path={tmp_path / 'out'}",
            "finetuning_type=lora",
            "template=llama3",
        ],
    )
    loaded, _ = load_model(inference, for_training=False, tokenizer=tokenizer)
    prompt = torch.tensor([rows[0]["input_ids"]])
    with torch.no_grad():
        expected = resumed.model.eval()(input_ids=prompt).logits
        assert torch.allclose(loaded(input_ids=prompt).logits, expected, atol=1e-4)


def test_too_few_prompts_for_one_ppo_step_names_the_batch(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("ppo")
    with pytest.raises(TrainError, match=r"stage ppo takes 32 prompts a step .* but the dataset has 16"):
        train(_ppo("max_steps=1"), lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:16], tmp_path)
