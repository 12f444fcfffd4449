"""Small pieces every demo dataset generator uses: the row type, a seeded RNG and sharegpt turns."""

from __future__ import annotations

import random
from typing import Any

Row = dict[str, Any]


def seeded_rng(name: str) -> random.Random:
    """A generator seeded by a string (hashed with SHA-512 by `random`, so stable across runs and hosts)."""
    return random.Random(f"lf-ray-demo/{name}")


def sharegpt_turns(prompts: list[str]) -> list[Row]:
    """Alternating human / gpt turns: prompts[0] human, prompts[1] gpt, ... (an odd count ends with human)."""
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": text} for i, text in enumerate(prompts)]
