"""GRPO's reward functions: the built-ins for verifiable tasks, and the user's, by import path.

    funcs = reward_functions(cfg.finetuning)     # one callable per `reward_funcs` entry, named after it

Every function is called the way TRL's `GRPOTrainer` calls one: keyword lists `prompts`, `completions`,
`completion_ids`, one entry per completion, plus the dataset's columns (`answer`: the reference response;
`input_ids`: the prompt's token ids; `labels`: the reference's) and TRL's `trainer_state`, `log_extra`,
`log_metric`; it returns one number per completion (None: does not apply, TRL's convention). `checked` wraps each:
a value that is not a finite number stops training with the function's name, the value and the completion.

A user function is `module:function`, imported on the driver (so a typo stops the config at parse time) and on
every Ray worker. The directory `lf-ray` runs from is on the import path of both (Ray adds the driver's working
directory to its workers'); on a remote cluster ship the module with the job (`ray job submit --working-dir .`).
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lf_ray.errors import ConfigError, TrainError

if TYPE_CHECKING:
    import datasets

    from lf_ray.config import FinetuningArguments

RewardFunc = Callable[..., list[float | None]]

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
TRL_KEYWORDS = (
    *("prompts", "completions", "completion_ids", "answer", "input_ids", "attention_mask", "labels"),
    *("trainer_state", "log_extra", "log_metric"),
)
"""What TRL hands every reward function (the prompt dataset's columns among them): a user function must take them."""


def exact_match(completions: list[str], answer: list[str], **kwargs: Any) -> list[float]:
    """1 when the completion, stripped, is the reference answer, stripped; else 0."""
    return [float(c.strip() == a.strip()) for c, a in zip(completions, answer, strict=True)]


def numeric_match(completions: list[str], answer: list[str], **kwargs: Any) -> list[float]:
    """1 when the last number in the completion equals the last number in the answer (1,000 and 1000.0 alike);
    0 when they differ or the completion has no number."""
    scores = []
    for completion, reference in zip(completions, answer, strict=True):
        number = _last_number(completion)
        scores.append(float(number is not None and number == _last_number(reference)))
    return scores


def _last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def prompt_tail(ids: Sequence[int], max_prompt_length: int | None) -> list[int]:
    """The prompt ids GRPO samples from: the last `max_prompt_length` of them (all when None)."""
    return list(ids)[-max_prompt_length:] if max_prompt_length else list(ids)


def with_text_columns(dataset: datasets.Dataset, tokenizer: Any) -> datasets.Dataset:
    """`prompt` and `answer`: the prompt's and the reference's text, for the reward functions (and TRL's logs)."""

    def decode(batch: dict[str, list]) -> dict[str, list[str]]:
        return {
            "prompt": tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True),
            "answer": tokenizer.batch_decode(batch["labels"], skip_special_tokens=True),
        }

    return dataset.map(decode, batched=True)


def format_match(pattern: str) -> RewardFunc:
    """1 when the whole completion matches `reward_format_pattern` (DOTALL: `.` spans lines); else 0."""
    compiled = re.compile(pattern, re.DOTALL)

    def format_match(completions: list[str], **kwargs: Any) -> list[float]:
        return [float(compiled.fullmatch(c.strip()) is not None) for c in completions]

    return format_match


def length_penalty(max_completion_length: int) -> RewardFunc:
    """-(completion tokens / the limit): 0 for an empty completion, -1 for one cut at the limit (grpo's
    `max_completion_length`, ppo's `max_new_tokens`)."""

    def length_penalty(completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        return [-len(ids) / max_completion_length for ids in completion_ids]

    return length_penalty


BUILTINS: dict[str, Callable[[FinetuningArguments], RewardFunc]] = {
    "exact_match": lambda ft: exact_match,
    "numeric_match": lambda ft: numeric_match,
    "format_match": lambda ft: format_match(ft.reward_format_pattern or ""),
    "length_penalty": lambda ft: length_penalty(ft.max_completion_length),
}


def reward_functions(ft: FinetuningArguments) -> list[RewardFunc]:
    """`reward_funcs`, resolved and wrapped by `checked`, each named after its entry (TRL logs
    `rewards/<name>/mean`)."""
    return [checked(resolve(name, ft), name) for name in ft.reward_funcs or []]


def resolve(name: str, ft: FinetuningArguments) -> RewardFunc:
    """A built-in by name, or a user function by `module:function`; ConfigError when it cannot be used."""
    if name in BUILTINS:
        return BUILTINS[name](ft)
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            f"reward_funcs: `{name}` is neither a built-in ({', '.join(BUILTINS)}) nor an import path; write a "
            "function of yours as `module:function` (e.g. `my_rewards:exact_answer` for my_rewards.py in the "
            "directory you run lf-ray from)"
        )
    if os.getcwd() not in sys.path:  # the console script's path holds its bin folder, not the working directory
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any failure of the user's module is reported the same way
        raise ConfigError(
            f"reward_funcs: `{name}` cannot be imported: {type(err).__name__}: {err}; the module must be importable "
            f"from {os.getcwd()} (where lf-ray runs) on the driver and on every Ray worker"
        ) from None
    func = getattr(module, attribute, None)
    if not callable(func):
        raise ConfigError(
            f"reward_funcs: `{name}`: module `{module_name}` ({getattr(module, '__file__', '?')}) has no function "
            f"`{attribute}`; check the name after the colon"
        )
    _check_signature(func, name)
    return func


def _check_signature(func: Callable[..., Any], name: str) -> None:
    try:
        inspect.signature(func).bind(**dict.fromkeys(TRL_KEYWORDS))
    except TypeError as err:
        raise ConfigError(
            f"reward_funcs: `{name}` cannot be called as GRPO calls a reward function ({err}): it gets the keyword "
            f"lists {', '.join(TRL_KEYWORDS[:4])} and more; define it as `def {name.rpartition(':')[2]}(completions, "
            "answer, **kwargs)` and return one number per completion"
        ) from None


def checked(func: RewardFunc, name: str) -> RewardFunc:
    """`func`, failing with its name, the value and the completion when a reward is not a finite number."""

    def reward(*, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        values = func(completions=completions, **kwargs)
        if not isinstance(values, (list, tuple)) or len(values) != len(completions):
            got = f"{len(values)} values" if isinstance(values, (list, tuple)) else f"a {type(values).__name__}"
            raise TrainError(
                f"reward function `{name}` returned {got} for {len(completions)} completions; return a list with "
                "one number per completion"
            )
        for index, value in enumerate(values):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TrainError(
                    f"reward function `{name}` returned {value!r} (a {type(value).__name__}) for completion "
                    f"{index} {str(completions[index])[:80]!r}; a reward must be a finite number (or None where it "
                    "does not apply)"
                )
        return list(values)

    reward.__name__ = name
    return reward


def model_reward(model: Any, pad_token_id: int, max_prompt_length: int | None) -> RewardFunc:
    """A reward model as a reward function: it scores each prompt's ids followed by the completion's ids (the
    template's tokens exactly as sampled, not decoded and re-tokenized), with its head's first logit."""
    import torch

    def reward_model(input_ids: list[list[int]], completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        rows = [prompt_tail(prompt, max_prompt_length) for prompt in input_ids]
        rows = [prompt + list(completion) for prompt, completion in zip(rows, completion_ids, strict=True)]
        width = max(len(row) for row in rows)
        device = next(model.parameters()).device
        ids = torch.tensor([row + [pad_token_id] * (width - len(row)) for row in rows], device=device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=device)
        with torch.inference_mode():
            return model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()

    return reward_model


def api_reward(url: str, tokenizer: Any, max_prompt_length: int | None, timeout_s: float = 300) -> RewardFunc:
    """A reward model behind LLaMA-Factory's `/v1/score/evaluation` (an lf-ray `serve` of an rm step's output with
    `stage: rm`, or LLaMA-Factory's API) as a reward function: it posts each prompt + completion as the template's
    text, special tokens kept (as LLaMA-Factory's PPO does), with `API_KEY` as the bearer token when set."""
    import json
    import urllib.error
    import urllib.request

    from lf_ray.constants import api_key

    endpoint = url.rstrip("/") + "/score/evaluation"
    headers = {"Content-Type": "application/json"}
    if key := api_key():
        headers["Authorization"] = f"Bearer {key}"

    def reward_model(input_ids: list[list[int]], completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        rows = [prompt_tail(prompt, max_prompt_length) for prompt in input_ids]
        texts = tokenizer.batch_decode(
            [prompt + list(completion) for prompt, completion in zip(rows, completion_ids, strict=True)],
            skip_special_tokens=False,
        )
        body = json.dumps({"model": "reward_model", "messages": texts}).encode()
        request = urllib.request.Request(endpoint, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return json.loads(response.read())["scores"]
        except urllib.error.HTTPError as err:
            raise TrainError(
                f"the reward model at {endpoint} answered HTTP {err.code}: {err.read().decode(errors='replace')[:300]}"
                "; serve an rm step's output there with `stage: rm`"
            ) from None
        except (urllib.error.URLError, TimeoutError, KeyError, ValueError) as err:
            raise TrainError(
                f"the reward model at {endpoint} gave no scores ({type(err).__name__}: {err}); check that it is "
                "running and reachable from every training worker"
            ) from None

    return reward_model
