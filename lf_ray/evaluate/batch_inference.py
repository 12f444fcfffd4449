"""Ray Data batch inference over a tokenized split: per-row loss (for eval loss / perplexity) and generation.

Each `map_batches` actor loads the model once (base + adapters merged, as `load_model` does for inference)
and the tokenizer fixed by the template, then scores or generates batch after batch. Order is preserved, so
row i of the output belongs to row i of the split. On a GPU cluster each actor takes one GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lf_ray.constants import IGNORE_INDEX

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig


class _ModelActor:
    """Loads the config's model for inference (float32 on CPU) and its template-fixed tokenizer."""

    def __init__(self, config: dict[str, Any]) -> None:
        from lf_ray.config import build_config
        from lf_ray.data.tokenizer_spec import tokenizer_spec
        from lf_ray.model.loading import load_model

        self.cfg = build_config(config)
        self.tokenizer, self.template = tokenizer_spec(self.cfg).load()
        self.model, _ = load_model(self.cfg, for_training=False, tokenizer=self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0


def _pad(rows: list[list[int]], value: int, left: bool) -> np.ndarray:
    width = max(len(row) for row in rows)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, row in enumerate(rows):
        if left:
            out[i, width - len(row) :] = row
        else:
            out[i, : len(row)] = row
    return out


class LossBatch(_ModelActor):
    """Summed token cross-entropy and the number of scored (label != IGNORE_INDEX) tokens of each row."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ids = [list(row) for row in batch["input_ids"]]
        labels = torch.tensor(_pad([list(row) for row in batch["labels"]], IGNORE_INDEX, left=False))
        inputs = {
            "input_ids": torch.tensor(_pad(ids, self.pad_id, left=False)),
            "attention_mask": torch.tensor(_pad([[1] * len(row) for row in ids], 0, left=False)),
        }
        if "position_ids" in batch:  # packed rows: positions restart at each sequence
            inputs["position_ids"] = torch.tensor(_pad([list(row) for row in batch["position_ids"]], 0, left=False))
        with torch.inference_mode():
            logits = self.model(**inputs).logits.float()
        shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            shifted_logits.transpose(1, 2), shifted_labels, ignore_index=IGNORE_INDEX, reduction="none"
        )
        scored = shifted_labels != IGNORE_INDEX
        return {"loss_sum": losses.sum(dim=-1).numpy(), "tokens": scored.sum(dim=-1).numpy()}


class GenerateBatch(_ModelActor):
    """Greedy or sampled continuations of each prompt, stopping at the template's stop tokens; with
    `base_config`, also the continuations of the base model (the same model without its adapters)."""

    def __init__(self, config: dict[str, Any], base_config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.base_model = None
        if base_config is not None:
            from lf_ray.config import build_config
            from lf_ray.model.loading import load_model

            self.base_model, _ = load_model(build_config(base_config), for_training=False, tokenizer=self.tokenizer)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {"predict": self._generate(self.model, batch["input_ids"])}
        if self.base_model is not None:
            out["base_predict"] = self._generate(self.base_model, batch["input_ids"])
        return out

    def _generate(self, model: Any, rows: np.ndarray) -> np.ndarray:
        import torch

        prompts = [list(row) for row in rows]
        input_ids = torch.tensor(_pad(prompts, self.pad_id, left=True))
        mask = torch.tensor(_pad([[1] * len(row) for row in prompts], 0, left=True))
        kwargs = self.cfg.generating.generation_kwargs()
        if not kwargs["do_sample"]:  # transformers warns about sampling settings that greedy decoding ignores
            kwargs = {k: v for k, v in kwargs.items() if k not in ("temperature", "top_p", "top_k")}
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                eos_token_id=self.template.get_stop_token_ids(self.tokenizer),
                pad_token_id=self.pad_id,
                **kwargs,
            )
        skip = self.cfg.generating.skip_special_tokens
        texts = self.tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=skip)
        return np.array([text.strip() for text in texts], dtype=object)


def _map_split(
    cfg: LfRayConfig, split: Path, actor: type[_ModelActor], columns: list[str], actors: int, **actor_kwargs: Any
) -> dict[str, list]:
    import ray
    import ray.data

    from lf_ray.cluster import ensure_ray

    ensure_ray(cfg.ray.ray_init_kwargs)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    use_gpu = ray.cluster_resources().get("GPU", 0) > 0
    dataset = (
        ray.data.read_parquet(str(split))
        .select_columns(columns)
        .map_batches(
            actor,
            fn_constructor_kwargs={"config": cfg.to_dict(), **actor_kwargs},
            batch_size=cfg.eval.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=0 if use_gpu else 1,
            num_gpus=1 if use_gpu else 0,
        )
    )
    rows = dataset.take_all()
    return {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}


def score_split(cfg: LfRayConfig, split: Path, actors: int = 1) -> dict[str, float]:
    """Token-weighted mean loss of the split's labelled tokens and its perplexity."""
    import pyarrow.parquet as pq

    from lf_ray.evaluate.metrics import perplexity

    columns = [
        c for c in ("input_ids", "labels", "position_ids") if c in pq.read_schema(next(split.glob("*.parquet"))).names
    ]
    scored = _map_split(cfg, split, LossBatch, columns, actors)
    tokens = int(sum(scored.get("tokens", [])))
    if tokens == 0:
        return {}
    loss = float(sum(scored["loss_sum"])) / tokens
    return {"eval_loss": loss, "perplexity": perplexity(loss), "eval_tokens": tokens}


def generate_split(cfg: LfRayConfig, split: Path, base: LfRayConfig | None = None, actors: int = 1) -> dict[str, list]:
    """`predict`: one generated text per row of the split (its `input_ids` are the prompts), in the split's
    order; with `base`, `base_predict` too, generated by that config's model in the same actors."""
    base_config = base.to_dict() if base is not None else None
    generated = _map_split(cfg, split, GenerateBatch, ["input_ids"], actors, base_config=base_config)
    return {key: [str(text) for text in texts] for key, texts in generated.items()}
