"""A reward model served as LLaMA-Factory's API serves one: `stage: rm` in a serve config loads the model as a
sequence classifier (an rm step's full output, or the base with the rm adapter merged) and answers
`POST /v1/score/evaluation` with one score per text.

    scorer = RewardScorer.from_config(cfg)
    scorer.score(["<|begin_of_text|>...question...answer<|eot_id|>"])   # [0.73]

Texts are tokenized as they are (`add_special_tokens=False`: the client sends the template's tokens, as
LLaMA-Factory's PPO does), cut to `max_length` (default: the model's context), right-padded; the score is the
head's first logit at the last real token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

SCORE_BATCH = 16


class RewardScorer:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def from_config(cls, cfg: LfRayConfig) -> RewardScorer:
        import torch

        from lf_ray.data.tokenizer_spec import tokenizer_spec
        from lf_ray.model.loading import load_model

        tokenizer, _ = tokenizer_spec(cfg).load()
        model, tokenizer = load_model(cfg, for_training=False, task="reward", tokenizer=tokenizer)
        if torch.cuda.is_available():
            model = model.to("cuda")
        return cls(model, tokenizer)

    def score(self, texts: list[str], max_length: int | None = None) -> list[float]:
        import torch

        limit = max_length or getattr(self.model.config, "max_position_embeddings", None) or 1024
        device = next(self.model.parameters()).device
        scores: list[float] = []
        for start in range(0, len(texts), SCORE_BATCH):
            batch = self.tokenizer(
                texts[start : start + SCORE_BATCH],
                add_special_tokens=False,
                truncation=True,
                max_length=limit,
                padding=True,
                padding_side="right",
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores
