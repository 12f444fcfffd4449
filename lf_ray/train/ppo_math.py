"""PPO's arithmetic, as LLaMA-Factory's PPO computes it (TRL 0.9's `PPOTrainer`, which TRL has since dropped).

    kl = AdaptiveKLController(0.2, target=ppo_target)
    rewards, kl_per_sequence = token_rewards(scores, logprobs, ref_logprobs, mask, kl.value)
    advantages, returns = generalized_advantages(values, rewards, mask, whiten_rewards=ppo_whiten_rewards)
    loss, stats = ppo_loss(new_logprobs, new_values, logprobs, values, advantages, returns, mask)
    kl.update(mean KL of the batch, sequences in the batch)

Tensors are (sequences, response positions): position t holds the log-prob of the t-th generated token and the
value of the state before it; `mask` is 1 on the response's tokens. TRL 0.9's constants, which LLaMA-Factory
keeps: KL coefficient 0.2 to start, horizon 10,000, γ 1, λ 0.95, policy and value clip ranges 0.2, value loss
weight 0.1, and a batch whose mean probability ratio exceeds 10 is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

INIT_KL_COEF = 0.2
KL_HORIZON = 10_000
GAMMA = 1.0
LAM = 0.95
CLIP_RANGE = 0.2
CLIP_RANGE_VALUE = 0.2
VALUE_LOSS_COEF = 0.1
RATIO_THRESHOLD = 10.0


class AdaptiveKLController:
    """The KL penalty's coefficient, moved towards `target` (the summed KL of a sequence), Ziegler et al. 2019:
    at most ±20% of the error, scaled by the sequences seen over the horizon."""

    def __init__(self, value: float = INIT_KL_COEF, *, target: float, horizon: int = KL_HORIZON) -> None:
        self.value, self.target, self.horizon = value, target, horizon

    def update(self, current_kl: float, sequences: int) -> None:
        error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + error * sequences / self.horizon


@dataclass
class RunningMoments:
    """The mean and standard deviation of every score seen so far (`ppo_score_norm`), merged batch by batch."""

    mean: float = 0.0
    var: float = 1.0
    count: float = 1e-24

    @property
    def std(self) -> float:
        """The unbiased standard deviation of all scores seen."""
        return (self.var * self.count / max(self.count - 1, 1e-24)) ** 0.5

    def update(self, scores: torch.Tensor) -> None:
        scores = scores.double()
        batch_mean, batch_count = scores.mean().item(), scores.numel()
        batch_var = scores.var(unbiased=False).item()
        delta, total = batch_mean - self.mean, self.count + batch_count
        self.var = (
            self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        ) / total
        self.mean += delta * batch_count / total
        self.count = total


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum()


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True) -> torch.Tensor:
    """`values` scaled to unit variance over the masked positions (unbiased), and centred unless `shift_mean` is
    False (then the mean is kept)."""
    mean = masked_mean(values, mask)
    centred = values - mean
    var = masked_mean(centred**2, mask) * mask.sum() / (mask.sum() - 1)
    whitened = centred * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def token_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each response token's reward: −kl_coef × (log-prob − reference log-prob), plus the sequence's score on its
    last token. Also returns each sequence's summed KL."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)  # the last response position of each row
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl.sum(dim=1)


def generalized_advantages(
    values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, *, whiten_rewards: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) advantages, whitened over the batch, and the returns (unwhitened advantages + values)."""
    values, rewards = values * mask, rewards * mask
    if whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(len(rewards), dtype=rewards.dtype, device=rewards.device)
    width = rewards.shape[1]
    for t in reversed(range(width)):
        next_value = values[:, t + 1] if t < width - 1 else 0.0
        delta = rewards[:, t] + GAMMA * next_value - values[:, t]
        running = delta + GAMMA * LAM * running
        advantages[:, t] = running
    returns = advantages + values
    return masked_whiten(advantages, mask).detach(), returns.detach()


def ppo_loss(
    logprobs: torch.Tensor,
    values: torch.Tensor,
    old_logprobs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped policy loss + 0.1 × the clipped value loss of one mini-batch, zero when its mean probability
    ratio exceeds the threshold (a batch too far from the one sampled); and the mini-batch's statistics."""
    clipped_values = torch.clamp(values, old_values - CLIP_RANGE_VALUE, old_values + CLIP_RANGE_VALUE)
    value_losses = torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
    value_loss = 0.5 * masked_mean(value_losses, mask)
    ratio = torch.exp(logprobs - old_logprobs)
    policy_losses = -advantages * ratio
    clipped_policy_losses = -advantages * torch.clamp(ratio, 1.0 - CLIP_RANGE, 1.0 + CLIP_RANGE)
    policy_loss = masked_mean(torch.max(policy_losses, clipped_policy_losses), mask)
    loss = policy_loss + VALUE_LOSS_COEF * value_loss
    mean_ratio = masked_mean(ratio, mask).item()
    if mean_ratio > RATIO_THRESHOLD:
        loss = loss * 0.0
    stats = {
        "policy_loss": policy_loss.item(),
        "value_loss": value_loss.item(),
        "clip_ratio": masked_mean((clipped_policy_losses > policy_losses).float(), mask).item(),
        "value_clip_ratio": masked_mean(
            ((clipped_values - returns) ** 2 > (values - returns) ** 2).float(), mask
        ).item(),
        "ratio": mean_ratio,
        "loss": loss.item(),
    }
    return loss, stats
