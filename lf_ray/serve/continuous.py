"""Continuous batching for the transformers engine: requests join the running decode at its next step and leave
when they finish, instead of waiting for a whole batch to end.

`ContinuousBatcher` owns one engine and one thread. `submit(rows, deliver)` queues a request (its `n` rows); the
thread admits waiting requests into its `RunningBatch` between decoding steps (up to `max_batch_size` rows; a
request alone may exceed it), runs one step for every row, and calls each request's `deliver` with that step's
deltas (one per row, None for a row already finished), then `FINISHED`, or the exception that ended it.
`cancel(request)` takes its rows out at the next step (a client that went away frees its slots at once).

transformers 5's own continuous-batching manager (`model.init_continuous_batching`, paged attention) is not used:
it samples with one generation config per manager (temperature / top-k / top-p are the only per-request knobs) and
has no per-request seed, repetition penalty, stop strings or LoRA adapter, all of which lf-ray's API offers per
request. The engine's batch (`RunningBatch`) keeps those per row; this module is only the scheduling around it.
No Ray here: the Serve replica (serve/deployments.py) bridges `deliver` to its asyncio streams.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lf_ray.serve.engine import GenerationRow, RowState, RunningBatch, TransformersEngine

logger = logging.getLogger(__name__)

FINISHED = object()
"""What `deliver` receives after a request's last step."""

Deliver = Callable[[Any], None]
"""Receives a request's per-step `list[RowDelta | None]`, then `FINISHED`, or the exception that ended it."""


@dataclass(eq=False)
class Request:
    """One submitted request: its rows' decoding states and where its steps go."""

    states: list[RowState]
    deliver: Deliver
    number: int
    left: int = field(init=False)

    def __post_init__(self) -> None:
        self.left = len(self.states)


class ContinuousBatcher:
    """Decodes the requests of one engine on a thread of its own, rows joining and leaving between steps."""

    def __init__(self, engine: TransformersEngine, max_batch_size: int, wait_s: float = 0.0) -> None:
        """`wait_s`: when nothing is decoding, how long the first request waits for more to share its prefill."""
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self._waiting: collections.deque[Request] = collections.deque()
        self._cancelled: set[Request] = set()
        self._running: dict[int, Request] = {}  # id(state) -> its request
        self._numbers = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="lf-ray-decode", daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[GenerationRow], deliver: Deliver) -> Request:
        states = [RowState.start(row) for row in rows]
        request = Request(states, deliver, next(self._numbers))
        with self._changed:
            if self._closed:
                raise RuntimeError("the engine's decoding thread has stopped")
            self._waiting.append(request)
            self._changed.notify()
        return request

    def cancel(self, request: Request) -> None:
        """Stop decoding `request` (no more deliveries); nothing happens if it has finished."""
        with self._changed:
            if request in self._waiting:
                self._waiting.remove(request)
            elif request.left:
                self._cancelled.add(request)
                self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout=30)

    # --- the decoding thread ------------------------------------------------------------------------------------

    def _loop(self) -> None:
        batch = RunningBatch(self.engine)
        while True:
            joining, cancelled = self._next_work(batch)
            if joining is None:
                batch.clear()
                return
            try:
                if cancelled:
                    batch.drop([state for request in cancelled for state in request.states])
                    for request in cancelled:
                        self._forget(request)
                    self.engine.cancelled_requests += len(cancelled)
                if joining:
                    self._admit(batch, joining)
                if batch.states:
                    self._step(batch)
            except Exception as err:  # a decoding step failed: every request in the batch hears of it
                logger.exception("decoding %d row(s) failed", len(batch.states))
                for request in dict.fromkeys(self._running.values()):
                    _send(request, err)
                    self._forget(request)
                batch.clear()

    def _next_work(self, batch: RunningBatch) -> tuple[list[Request] | None, list[Request]]:
        """Wait until there is something to do; take the cancelled requests and those that may join now."""
        with self._changed:
            while not self._closed and not self._waiting and not batch.states and not self._cancelled:
                self._changed.wait()
            if self._closed:
                return None, []
            if self.wait_s and not batch.states and self._rows_waiting() < self.max_batch_size:
                self._changed.wait_for(lambda: self._rows_waiting() >= self.max_batch_size, timeout=self.wait_s)
            cancelled, self._cancelled = list(self._cancelled), set()
            joining: list[Request] = []
            if batch.joinable:
                rows = len(batch.states)
                while self._waiting and (rows + len(self._waiting[0].states) <= self.max_batch_size or not rows):
                    request = self._waiting.popleft()
                    joining.append(request)
                    rows += len(request.states)
            return joining, cancelled

    def _rows_waiting(self) -> int:
        return sum(len(request.states) for request in self._waiting)

    def _admit(self, batch: RunningBatch, joining: list[Request]) -> None:
        states = [state for request in joining for state in request.states]
        try:
            batch.admit(states)
        except Exception as err:  # the prefill failed: only the joining requests hear of it
            logger.exception("prefill of %d row(s) failed", len(states))
            for request in joining:
                _send(request, err)
                self._forget(request)
            return
        for request in joining:
            self._running.update((id(state), request) for state in request.states)

    def _step(self, batch: RunningBatch) -> None:
        delta_of = {id(state): delta for state, delta in batch.step()}
        for request in dict.fromkeys(self._running[key] for key in delta_of):
            step = [delta_of.get(id(state)) for state in request.states]
            _send(request, step)
            request.left -= sum(1 for delta in step if delta is not None and delta.finish_reason is not None)
            if not request.left:
                self._forget(request)
                _send(request, FINISHED)

    def _forget(self, request: Request) -> None:
        request.left = 0
        for state in request.states:
            self._running.pop(id(state), None)


def _send(request: Request, item: Any) -> None:
    try:
        request.deliver(item)
    except Exception:  # the receiver is gone (its event loop closed): nothing to tell
        logger.debug("request %d: delivery failed", request.number, exc_info=True)
