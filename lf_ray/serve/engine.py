"""Batched, token-by-token generation with transformers on CPU or GPU: the engine behind `lf-ray serve` and `chat`.

`RunningBatch` holds rows decoding together (left-padded, one KV cache): rows join between steps (a joining group
is prefilled, then its cache is padded and concatenated to the running one) and finished rows leave at once. Rows
keep their own sampling parameters (temperature, top-p, top-k, repetition penalty, seed), stop tokens, stop
strings, token budget and LoRA adapter, so requests of different clients share a forward pass.
`TransformersEngine.generate(rows)` decodes a fixed set of rows and yields, after every step, each row's new text
(`lf-ray chat`, tests); `ContinuousBatcher` (serve/continuous.py) schedules a Serve replica's requests into one
running batch. No Ray here.
"""

from __future__ import annotations

import collections
import inspect
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

BASE_ADAPTER = "__base__"
"""PEFT's name for "no adapter" in a mixed-adapter batch."""


@dataclass(frozen=True)
class SamplingParams:
    """How one row is decoded; `resolve_sampling` (serve/sampling.py) fills it from a request and the config."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    skip_special_tokens: bool = True


@dataclass(frozen=True)
class GenerationRow:
    """One sequence to generate: prompt token ids, how to sample, and which LoRA adapter (None: the base model)."""

    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None = None


@dataclass(frozen=True)
class RowDelta:
    """What a row produced in one step: new text (may be empty), tokens so far, and why it ended (or None)."""

    text: str
    completion_tokens: int
    finish_reason: str | None = None


@dataclass
class RowState:
    """A row while it decodes: its sampling generator (seeded rows), the ids so far, the text handed out."""

    row: GenerationRow
    generator: Any
    ids: list[int] = field(default_factory=list)
    emitted: int = 0  # characters of the decoded text already handed out
    finish_reason: str | None = None

    @classmethod
    def start(cls, row: GenerationRow) -> RowState:
        return cls(row, _make_generator(row.params.seed))


def cache_kwarg(model: Any) -> str:
    """The forward argument that takes the KV cache: `cache` from transformers 5.24 on (`past_key_values` is
    deprecated there and warns on every call), `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


class TransformersEngine:
    """A loaded causal LM (optionally a PEFT model holding several LoRA adapters) that decodes batches of rows."""

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        stop_token_ids: Sequence[int],
        keep_tokens: Sequence[str] = (),
    ) -> None:
        """`keep_tokens`: special tokens that are text to the reader (a tool format's `<tool_call>` tags), kept
        when `skip_special_tokens` drops the others."""
        self.model = model
        self.tokenizer = tokenizer
        self.stop_token_ids = frozenset(stop_token_ids)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_token_ids)
        keep = {tokenizer.convert_tokens_to_ids(token) for token in keep_tokens}
        self.skipped_ids = frozenset(tokenizer.all_special_ids) - keep
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        """How many rows each prefill took in: a batch's rows, or the requests that joined a running batch at once."""
        self.joined_running = 0
        """Prefills that joined a batch already decoding: the observable proof of continuous batching."""
        self.cancelled_requests = 0
        """Requests dropped from the running decode before their end (their client went away)."""
        self.lock = threading.Lock()
        """Held during a forward pass and while an adapter is (un)loaded: both touch the model's modules."""
        self.adapters_in_use: collections.Counter[str] = collections.Counter()
        self.pending_unloads: set[str] = set()
        self.cache_kwarg = cache_kwarg(model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- adapters ------------------------------------------------------------------------------------------

    @property
    def adapters(self) -> list[str]:
        return sorted(getattr(self.model, "peft_config", {}) or {})

    def load_adapter(self, name: str, path: str) -> None:
        """Attach a LoRA adapter (a path or a URI) under `name`; the first one turns the model into a PEFT model."""
        from peft import PeftModel

        from lf_ray.model.loader import resolve_adapter_path

        path = resolve_adapter_path(path)
        with self.lock:
            self.pending_unloads.discard(name)
            if name in self.adapters:
                return
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            self.model.eval()

    def unload_adapter(self, name: str) -> None:
        """Drop an adapter's weights once no running batch uses it (PEFT cannot delete its only adapter: it stays)."""
        self.pending_unloads.add(name)
        self._unload_pending()

    def _unload_pending(self) -> None:
        with self.lock:
            for name in sorted(self.pending_unloads):
                if self.adapters_in_use[name] > 0:
                    continue
                self.pending_unloads.discard(name)
                if name in self.adapters and len(self.adapters) > 1:
                    self.model.delete_adapter(name)

    # --- generation ----------------------------------------------------------------------------------------

    def generate(self, rows: Sequence[GenerationRow]) -> Iterator[list[RowDelta | None]]:
        """Decode `rows` together; after each step yield one entry per row (None once the row has finished)."""
        states = [RowState.start(row) for row in rows]
        index = {id(state): i for i, state in enumerate(states)}
        batch = RunningBatch(self)
        try:
            batch.admit(states)
            while batch.states:
                deltas: list[RowDelta | None] = [None] * len(states)
                for state, delta in batch.step():
                    deltas[index[id(state)]] = delta
                yield deltas
        finally:
            batch.clear()

    def _prefill(self, states: list[RowState]) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the left-padded prompts once; return the cache, last logits, attention mask and last positions."""
        import torch
        from transformers import DynamicCache

        rows = [state.row for state in states]
        width = max(len(row.prompt_ids) for row in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row.prompt_ids) :] = torch.tensor(row.prompt_ids, dtype=torch.long)
            mask[i, width - len(row.prompt_ids) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, mask, positions, cache, states)
        return cache, logits, mask, positions[:, -1:]

    def _forward(self, ids, mask, positions, cache, states: list[RowState]) -> torch.Tensor:
        """One forward pass under the lock (an adapter is never loaded or dropped mid-pass)."""
        import torch

        kwargs: dict[str, Any] = {}
        with self.lock, torch.inference_mode():
            if self.adapters:
                kwargs["adapter_names"] = [s.row.adapter or BASE_ADAPTER for s in states]
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{self.cache_kwarg: cache},
                **kwargs,
            )
            return out.logits[:, -1, :].float()

    def _choose_tokens(self, logits: torch.Tensor, states: list[RowState]) -> torch.Tensor:
        """Greedy rows without penalties take one batched argmax; the others go through their own processors."""
        import torch

        chosen = logits.argmax(dim=-1)
        for slot, state in enumerate(states):
            params = state.row.params
            if params.do_sample or params.repetition_penalty != 1.0:
                history = torch.tensor([state.row.prompt_ids + state.ids], device=logits.device)
                chosen[slot] = _sample_one(logits[slot : slot + 1], history, params, state.generator)
        return chosen

    def _advance(self, state: RowState, token: int) -> RowDelta:
        """Append a token, decide whether the row ends, and return the text that is now safe to hand out."""
        params = state.row.params
        if token in self.stop_token_ids:
            state.finish_reason = "stop"
        else:
            state.ids.append(token)
        produced = len(state.ids) + (state.finish_reason == "stop")
        ids = [i for i in state.ids if i not in self.skipped_ids] if params.skip_special_tokens else state.ids
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        cut = _find_stop(text, params.stop)
        if cut is not None:
            text, state.finish_reason = text[:cut], "stop"
        elif state.finish_reason is None and produced >= params.max_new_tokens:
            state.finish_reason = "length"
        safe = _safe_prefix_length(text, params.stop) if state.finish_reason is None else len(text)
        delta = text[state.emitted : max(safe, state.emitted)]
        state.emitted = max(safe, state.emitted)
        return RowDelta(delta, produced, state.finish_reason)


class RunningBatch:
    """Rows decoding together in one KV cache. Rows join (`admit`) and leave (finished, or `drop`) between steps.

    Prompts are left-padded. A joining group is prefilled on its own, then its cache is left-padded to the running
    cache's length (or the running one to the group's) and the two are concatenated along the batch, so every row
    keeps its own positions and attention mask: greedy outputs equal those of the row decoded alone. Leading columns
    no row attends to any more are cut off. Only caches made of plain `DynamicLayer`s can be joined (a sliding-window
    or static cache cannot); for those, `joinable` says rows wait until the batch is empty.
    """

    def __init__(self, engine: TransformersEngine) -> None:
        self.engine = engine
        self.states: list[RowState] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        """Each row's logits for its next token, from the last forward pass."""

    @property
    def joinable(self) -> bool:
        """Whether rows can join now: the batch is empty, or its cache can be padded and concatenated."""
        from transformers.cache_utils import DynamicLayer

        return not self.states or all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def admit(self, states: list[RowState]) -> None:
        """Prefill `states` and add them to the batch; their first tokens are chosen at the next `step`."""
        import torch

        cache, logits, mask, positions = self.engine._prefill(states)
        self.engine.batch_sizes[len(states)] += 1
        if self.states:
            self.engine.joined_running += 1
            width = max(mask.shape[1], self.mask.shape[1])
            for running, joining in zip(self.cache.layers, cache.layers, strict=True):
                running.keys = torch.cat([_pad_left(running.keys, width), _pad_left(joining.keys, width)])
                running.values = torch.cat([_pad_left(running.values, width), _pad_left(joining.values, width)])
            self.mask = torch.cat([_pad_left(self.mask, width, dim=1), _pad_left(mask, width, dim=1)])
            self.positions = torch.cat([self.positions, positions])
            self.logits = torch.cat([self.logits, logits])
        else:
            self.cache, self.mask, self.positions, self.logits = cache, mask, positions, logits
        self.states.extend(states)
        self.engine.adapters_in_use.update(s.row.adapter for s in states if s.row.adapter is not None)

    def step(self) -> list[tuple[RowState, RowDelta]]:
        """Choose every row's next token and hand out its text; finished rows leave; the rest run one forward pass."""
        import torch

        states, engine = self.states, self.engine
        next_ids = engine._choose_tokens(self.logits, states)
        deltas = [(state, engine._advance(state, int(token))) for state, token in zip(states, next_ids, strict=True)]
        keep = [slot for slot, state in enumerate(states) if state.finish_reason is None]
        self._keep(keep)
        if self.states:
            self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.states), 1))], dim=1)
            self.positions = self.positions + 1
            self.logits = engine._forward(next_ids[keep][:, None], self.mask, self.positions, self.cache, self.states)
        return deltas

    def drop(self, leaving: Sequence[RowState]) -> None:
        """Take rows out between steps (their client went away)."""
        gone = {id(state) for state in leaving}
        self._keep([slot for slot, state in enumerate(self.states) if id(state) not in gone])

    def clear(self) -> None:
        self._keep([])

    def _keep(self, slots: list[int]) -> None:
        import torch

        if len(slots) == len(self.states):
            return
        kept = set(slots)
        leaving = [state.row.adapter for slot, state in enumerate(self.states) if slot not in kept]
        self.states = [self.states[slot] for slot in slots]
        if not slots:
            self.cache = self.mask = self.positions = self.logits = None
        else:
            index = torch.tensor(slots, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.mask, self.positions, self.logits = self.mask[index], self.positions[index], self.logits[index]
            self._trim()
        self.engine.adapters_in_use.subtract(name for name in leaving if name is not None)
        self.engine._unload_pending()

    def _trim(self) -> None:
        """Cut the leading columns no remaining row attends to (padding of rows that have left)."""
        if not self.joinable:
            return
        unused = int((self.mask.sum(dim=0) == 0).long().cumprod(dim=0).sum())
        if unused:
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]


def _pad_left(tensor: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    """Zero-pad `tensor` on the left of `dim` to `width` (KV caches: batch, heads, length, head size)."""
    import torch

    missing = width - tensor.shape[dim]
    if not missing:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _make_generator(seed: int | None) -> Any:
    if seed is None:
        return None
    import torch

    return torch.Generator().manual_seed(seed)


def _sample_one(scores: torch.Tensor, history: torch.Tensor, params: SamplingParams, generator: Any) -> int:
    """transformers' own logits processors, applied to one row, then greedy or multinomial sampling."""
    import torch
    from transformers import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    raw = scores
    if params.repetition_penalty != 1.0:
        scores = RepetitionPenaltyLogitsProcessor(params.repetition_penalty)(history, scores)
    if params.do_sample and params.temperature != 1.0:
        scores = TemperatureLogitsWarper(params.temperature)(history, scores)
    overflowed = torch.isposinf(scores)
    if overflowed.any():
        # a temperature or penalty so close to 0 that logits overflowed to infinity, leaving no probabilities: the
        # limit of sampling or argmax there is the largest of them as they were (both scale positive logits in order)
        return int(torch.where(overflowed, raw, float("-inf")).argmax(dim=-1))
    if not params.do_sample:
        return int(scores.argmax(dim=-1))
    if params.top_k > 0:
        scores = TopKLogitsWarper(params.top_k)(history, scores)
    if params.top_p < 1.0:
        scores = TopPLogitsWarper(params.top_p)(history, scores)
    probs = torch.softmax(scores, dim=-1).cpu()
    return int(torch.multinomial(probs, 1, generator=generator))


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts, or None."""
    hits = [index for stop in stops if stop and (index := text.find(stop)) >= 0]
    return min(hits) if hits else None


def _safe_prefix_length(text: str, stops: Sequence[str]) -> int:
    """How much of `text` can be streamed: hold back a partial UTF-8 character and any tail that may start a stop."""
    end = len(text) - text.endswith("\ufffd")
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, end), 0, -1):
            if text[end - size : end] == stop[:size]:
                held = max(held, size)
                break
    return end - held
