"""Ray Data batch inference over a tokenized split: per-row loss (for eval loss / perplexity) and generation.

Each `map_batches` actor loads the model once (base + adapters merged, as `load_model` does for inference)
and the tokenizer fixed by the template, then scores or generates batch after batch. The driver streams the
results (order preserved, so row i of the output belongs to row i of the split) and keeps only sums and the
predictions file it appends to: its memory does not grow with the split. On a GPU cluster each actor takes one
GPU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lf_ray.constants import IGNORE_INDEX
from lf_ray.evaluate.metrics import SIMILARITY_KEYS, example_scores

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
    """Greedy, sampled or beam-searched (`num_beams`, `eval_num_beams`, `length_penalty`) continuations of each
    prompt, stopping at the template's stop tokens, as LF's
    predictions file lines (`prompt`, `predict`, `label`) with each row's similarity scores; with
    `base_config`, also the continuations of the base model (the same model without its adapters)."""

    def __init__(self, config: dict[str, Any], base_config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.base_model = None
        if base_config is not None:
            from lf_ray.config import build_config
            from lf_ray.model.loading import load_model

            self.base_model, _ = load_model(build_config(base_config), for_training=False, tokenizer=self.tokenizer)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [
            {
                "prompt": self.tokenizer.decode(list(prompt), skip_special_tokens=False),
                "predict": predict,
                "label": self.tokenizer.decode(list(label), skip_special_tokens=True).strip(),
            }
            for prompt, label, predict in zip(
                batch["input_ids"], batch["labels"], self._generate(self.model, batch["input_ids"]), strict=True
            )
        ]
        if self.base_model is not None:
            for row, base in zip(rows, self._generate(self.base_model, batch["input_ids"]), strict=True):
                row["base_predict"] = base
        out = {"line": np.array([json.dumps(row, ensure_ascii=False) for row in rows], dtype=object)}
        for prefix, key in (("predict_", "predict"), ("base_predict_", "base_predict")):
            if key in rows[0]:
                scores = [example_scores(row[key], row["label"]) for row in rows]
                out.update({prefix + name: np.array([s[name] for s in scores]) for name in SIMILARITY_KEYS})
        return out

    def _generate(self, model: Any, rows: np.ndarray) -> np.ndarray:
        import torch

        prompts = [list(row) for row in rows]
        input_ids = torch.tensor(_pad(prompts, self.pad_id, left=True))
        mask = torch.tensor(_pad([[1] * len(row) for row in prompts], 0, left=True))
        kwargs = self.cfg.generating.generation_kwargs()
        if self.cfg.data.eval_num_beams:  # LLaMA-Factory's beams for predictions, over `num_beams`
            kwargs["num_beams"] = self.cfg.data.eval_num_beams
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
        return [text.strip() for text in texts]


def _map_split(
    cfg: LfRayConfig, split: Path, actor: type[_ModelActor], columns: list[str], actors: int, **actor_kwargs: Any
) -> Iterator[dict[str, np.ndarray]]:
    """The actors' output batches, streamed in the split's order."""
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
    return dataset.iter_batches(batch_size=None, batch_format="numpy")


def score_split(cfg: LfRayConfig, split: Path, actors: int = 1) -> dict[str, float]:
    """Token-weighted mean loss of the split's labelled tokens and its perplexity."""
    import pyarrow.parquet as pq

    from lf_ray.evaluate.metrics import perplexity

    columns = [
        c for c in ("input_ids", "labels", "position_ids") if c in pq.read_schema(next(split.glob("*.parquet"))).names
    ]
    loss_sum, tokens = 0.0, 0
    for batch in _map_split(cfg, split, LossBatch, columns, actors):
        loss_sum, tokens = loss_sum + float(batch["loss_sum"].sum()), tokens + int(batch["tokens"].sum())
    if tokens == 0:
        return {}
    loss = loss_sum / tokens
    return {"eval_loss": loss, "perplexity": perplexity(loss), "eval_tokens": tokens}


def predict_split(
    cfg: LfRayConfig, split: Path, predictions: Path, base: LfRayConfig | None = None, actors: int = 1
) -> dict[str, float]:
    """`predict`: generate one answer per row of the split (its `input_ids` are the prompts) into LF's
    predictions file at `predictions`, line i for row i, committed whole (a partial file, then a rename); with
    `base`, `base_predict` too, generated by that config's model in the same actors. Returns the mean
    similarity scores (`predict_bleu-4`, ..., and `base_predict_*`) and `predict_samples`."""
    base_config = base.to_dict() if base is not None else None
    totals: dict[str, float] = {}
    rows = 0
    partial = predictions.with_name(predictions.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        batches = _map_split(cfg, split, GenerateBatch, ["input_ids", "labels"], actors, base_config=base_config)
        for batch in batches:
            out.writelines(f"{line}\n" for line in batch["line"])
            rows += len(batch["line"])
            for key, scores in batch.items():
                if key != "line":
                    totals[key] = totals.get(key, 0.0) + float(scores.sum())
    if rows == 0:
        partial.unlink()
        raise ValueError("predict needs at least one prompt; the evaluation set is empty.")
    os.replace(partial, predictions)
    return {**{key: total / rows for key, total in totals.items()}, "predict_samples": rows}
