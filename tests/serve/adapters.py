"""Two real LoRA adapters for the builtin tiny Qwen, trained in-process with PEFT once per session (~10 s):

- `tools` learned to answer the weather question (with the get_weather tool offered) with a Qwen-format call;
- `greeter` learned to answer every question with GREETING.

They make the serve tests observable: the tiny base model itself is random.
"""

from __future__ import annotations

import json
from pathlib import Path

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_QUESTION = "What is the weather in Paris?"
WEATHER_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
PLAIN_ANSWER = "I can check the weather for you."
GREETING = "Greetings from the second adapter."
QUESTIONS = (WEATHER_QUESTION, "Hello!", "Who are you?", "Tell me a joke.")


def _examples(name: str) -> list[tuple[str, str, str | None]]:
    tools = json.dumps([WEATHER_TOOL["function"]])
    if name == "tools":
        return [(WEATHER_QUESTION, WEATHER_CALL, tools), *((q, PLAIN_ANSWER, tools) for q in QUESTIONS[1:])]
    return [*((q, GREETING, None) for q in QUESTIONS), (WEATHER_QUESTION, GREETING, tools)]


STEPS = 80


def recipe_fingerprint(model_path: str) -> str:
    """Changes with the base model, this file (data, steps) or torch (the cached adapters are then retrained)."""
    import torch

    from lf_ray.artifacts import fingerprint, hash_file, hash_tree

    return fingerprint([hash_file(Path(__file__)), hash_tree(Path(model_path)), torch.__version__, STEPS])


def train_adapter(name: str, out: Path, steps: int = STEPS) -> Path:
    """Overfit a rank-16 LoRA on a handful of conversations rendered by lf-ray's qwen template."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lf_ray.config import prepare_config
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.model.loader import load_causal_lm

    tokenizer, template = tokenizer_spec(prepare_config(None, ["model_name_or_path=builtin:tiny-qwen"])).load()
    pairs = [
        template.encode_oneturn(
            tokenizer, [{"role": "user", "content": q}, {"role": "assistant", "content": a}], None, t
        )
        for q, a, t in _examples(name)
    ]
    width = max(len(p) + len(r) for p, r in pairs)
    ids = torch.full((len(pairs), width), tokenizer.pad_token_id)
    labels = torch.full((len(pairs), width), -100)
    mask = torch.zeros_like(ids)
    for i, (prompt, response) in enumerate(pairs):
        seq = prompt + response
        ids[i, : len(seq)], mask[i, : len(seq)] = torch.tensor(seq), 1
        labels[i, len(prompt) : len(seq)] = torch.tensor(response)
    torch.manual_seed(0)
    model = get_peft_model(
        load_causal_lm("builtin:tiny-qwen"),
        LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0),
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(steps):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out
