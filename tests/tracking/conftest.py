"""A real transformers Trainer on the builtin tiny Llama, a few steps long, for the tracking callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest


def _rows(n: int, vocab_size: int, seed: int) -> list[dict]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, vocab_size, (16,), generator=generator).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * 16, "labels": ids})
    return rows


@pytest.fixture
def train_tiny(tiny_llama_path):
    """`train_tiny(output_dir, callbacks, max_steps=6, resume_from=None)`: runs Trainer.train and returns it.

    Logs every step, evaluates every 3 steps, saves a checkpoint every 3 steps, counts input tokens.
    """
    from transformers import Trainer, TrainingArguments

    from lf_ray.model.loader import load_causal_lm

    def run(output_dir: Path, callbacks: list, max_steps: int = 6, resume_from: str | None = None) -> Trainer:
        model = load_causal_lm(tiny_llama_path)
        args = TrainingArguments(
            output_dir=str(output_dir),
            max_steps=max_steps,
            per_device_train_batch_size=2,
            learning_rate=1e-3,
            logging_steps=1,
            eval_strategy="steps",
            eval_steps=3,
            save_steps=3,
            include_num_input_tokens_seen=True,
            use_cpu=True,
            report_to="none",
            disable_tqdm=True,
            seed=0,
        )
        vocab = model.config.vocab_size
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=_rows(32, vocab, seed=0),
            eval_dataset=_rows(4, vocab, seed=1),
            callbacks=callbacks,
        )
        trainer.train(resume_from_checkpoint=resume_from)
        return trainer

    return run
