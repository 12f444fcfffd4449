"""The Ray Serve deployments behind `lf-ray serve`, the shape Ray Serve LLM uses (router + model servers):

- `LLMServer`: model replicas. Each holds a `ChatService` and a `ContinuousBatcher`: a request joins the running
  decode at its next step (continuous batching), `@serve.multiplexed` loads the LoRA adapter a request names
  (requests for an adapter are routed to replicas that already hold it).
- `RewardServer`: instead of `LLMServer` for `stage: rm`: a reward model answering LLaMA-Factory's
  `/v1/score/evaluation` (`serve.scoring`); the chat routes then answer 405, as LLaMA-Factory's API does.
- `OpenAIIngress`: the FastAPI HTTP edge. It checks the API key, validates bodies against the OpenAI schema,
  maps `model` to base or adapter, streams server-sent events, and answers every error with OpenAI's body.
"""

# No `from __future__ import annotations` here: serve.ingress re-wraps the route methods, and FastAPI then cannot
# resolve string annotations (bodies turn into required query parameters).
import asyncio
import concurrent.futures
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException

from lf_ray.config import LfRayConfig  # at run time: Serve reads the replica constructor's annotations
from lf_ray.serve.api_errors import (
    ApiError,
    BadRequest,
    InternalError,
    InvalidApiKey,
    NotAllowed,
    Overloaded,
    RequestTooLarge,
    SchemaError,
)
from lf_ray.serve.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    ScoreEvaluationRequest,
    ScoreEvaluationResponse,
)
from lf_ray.serve.responses import PreparedRequest

logger = logging.getLogger(__name__)


# --- model replicas --------------------------------------------------------------------------------------------


class _AdapterLease:
    """What `@serve.multiplexed` caches per adapter; Serve calls `__del__` when it evicts the adapter."""

    def __init__(self, server: "LLMServer", name: str) -> None:
        self.server, self.name = server, name

    def __del__(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.service.engine.unload_adapter(self.name)


@serve.deployment(name="LLMServer")
class LLMServer:
    """One model (plus its LoRA adapters) on one replica; requests arrive already validated by the ingress."""

    def __init__(self, cfg: LfRayConfig) -> None:
        from lf_ray.serve.continuous import ContinuousBatcher
        from lf_ray.serve.service import ChatService

        self.service = ChatService.from_config(cfg)
        self.batcher = ContinuousBatcher(self.service.engine, cfg.serve.max_batch_size, cfg.serve.batch_wait_timeout_s)
        # adapter loads run on this thread, off the event loop (the batcher's thread decodes)
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lf-ray-adapters")

        async def load_adapter(name: str) -> _AdapterLease:  # a plain function: Serve keeps its cache on it
            return await self._load_adapter(name)

        self.get_adapter = serve.multiplexed(max_num_models_per_replica=cfg.serve.max_loras_per_replica)(load_adapter)

    async def _load_adapter(self, name: str) -> _AdapterLease:
        await asyncio.get_running_loop().run_in_executor(self.executor, self.service.ensure_adapter, name)
        return _AdapterLease(self, name)

    async def _prepare(self, kind: str, body: dict[str, Any]) -> PreparedRequest:
        if kind == "chat":
            prepared = self.service.prepare_chat(ChatCompletionRequest.model_validate(body))
        else:
            prepared = self.service.prepare_completion(CompletionRequest.model_validate(body))
        adapter = prepared.rows[0].adapter
        if adapter is not None:
            await self.get_adapter(adapter)
        return prepared

    async def _decode(self, prepared: PreparedRequest, *, live: bool = True) -> AsyncIterator[list[Any]]:
        """The request's row deltas, one list per decoding step; leaving early (a client gone) frees its rows.

        `live=False` (a non-streaming answer): the steps are kept on the decoding thread and handed over once the
        request ends, instead of waking this event loop at every step."""
        from lf_ray.serve.continuous import FINISHED

        loop = asyncio.get_running_loop()
        steps: asyncio.Queue = asyncio.Queue()
        kept: list[Any] = []

        def at_once(item: Any) -> None:
            loop.call_soon_threadsafe(steps.put_nowait, [item])

        def at_the_end(item: Any) -> None:
            kept.append(item)
            if item is FINISHED or isinstance(item, BaseException):
                loop.call_soon_threadsafe(steps.put_nowait, kept)

        request = self.batcher.submit(prepared.rows, at_once if live else at_the_end)
        try:
            while True:
                for item in await steps.get():
                    if item is FINISHED:
                        return
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            self.batcher.cancel(request)

    async def _steps(self, prepared: PreparedRequest) -> AsyncIterator[list[dict[str, Any]]]:
        builder = self.service.builder(prepared)
        if start := builder.start():
            yield start
        async for deltas in self._decode(prepared):
            chunks = builder.step(deltas)
            if chunks:
                yield chunks

    async def stream(self, kind: str, body: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
        """Stream chunks; the first item is an empty list, sent once the request is accepted."""
        prepared = await self._prepare(kind, body)
        yield []
        async for chunks in self._steps(prepared):
            yield chunks

    async def complete(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        prepared = await self._prepare(kind, body)
        builder = self.service.builder(prepared)
        async for deltas in self._decode(prepared, live=False):
            builder.step(deltas)
        return builder.body()

    def stats(self) -> dict[str, Any]:
        """Rows per prefill (size -> count), prefills that joined a running decode, requests dropped mid-decode, and
        the adapters held."""
        engine = self.service.engine
        return {
            "batch_sizes": dict(sorted(engine.batch_sizes.items())),
            "joined_running": engine.joined_running,
            "cancelled": engine.cancelled_requests,
            "adapters": engine.adapters,
        }


@serve.deployment(name="RewardServer")
class RewardServer:
    """A reward model on one replica: scores whole texts (`serve.scoring.RewardScorer`)."""

    def __init__(self, cfg: LfRayConfig) -> None:
        from lf_ray.serve.scoring import RewardScorer

        self.scorer = RewardScorer.from_config(cfg)
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lf-ray-scores")

    async def score(self, texts: list[str], max_length: int | None) -> list[float]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.scorer.score, texts, max_length)

    def stats(self) -> dict[str, Any]:
        return {"task": "reward"}


# --- HTTP ingress (helpers first: Serve pickles the ingress class when it is decorated) ----------------------------

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The largest request body the API reads (a 1,024-message chat of long turns fits); a larger one answers 413."""


class _BodyLimit:
    """ASGI middleware: 413 for a body declared larger than MAX_REQUEST_BYTES before reading it, and for one that
    grows past it as it arrives (chunked). FastAPI's own `max_body_size` answers in plain text, not OpenAI's body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            return await _error_response(_request_too_large())(scope, receive, send)
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_REQUEST_BYTES:
                raise HTTPException(status_code=413)  # FastAPI passes an HTTPException on to `_on_http_error`
            return message

        await self.app(scope, counted, send)


def _request_too_large() -> RequestTooLarge:
    return RequestTooLarge(
        f"The request body is larger than this server's limit of {MAX_REQUEST_BYTES // (1024 * 1024)} MiB. "
        "Fix: send a shorter conversation (or fewer, shorter tools).",
        code="request_too_large",
    )


api = FastAPI(title="lf-ray", description="OpenAI-compatible API of lf-ray (Ray Serve)")
api.add_middleware(_BodyLimit)


def _error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _cause(err: BaseException) -> BaseException:
    """Errors raised in a model replica arrive wrapped (RayTaskError); the original is its `cause`."""
    return getattr(err, "cause", None) or err


@api.exception_handler(RequestValidationError)
async def _on_invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
        return _error_response(
            BadRequest(
                f"We could not parse the JSON body of your request ({detail}). Fix: send a valid JSON object "
                "with Content-Type: application/json.",
                code="invalid_json",
            )
        )
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    problem = f"`{where}`: {first.get('msg')}" if where else str(first.get("msg"))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    received = first.get("input")
    shown = json.dumps(received)[:200] if received is not None and where else ""
    return _error_response(
        SchemaError(
            f"Invalid request: {problem}{more}{'; received ' + shown if shown else ''}. "
            "Fix: follow the OpenAI API reference for this endpoint.",
            param=where or None,
        )
    )


@api.exception_handler(ApiError)
async def _on_api_error(_: Request, exc: ApiError) -> JSONResponse:
    return _error_response(exc)


@api.exception_handler(HTTPException)
async def _on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 413:
        return _error_response(_request_too_large())
    if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not read the body: not UTF-8, too deep
        cause = exc.__cause__
        return _error_response(
            BadRequest(
                f"We could not parse the JSON body of your request ({type(cause).__name__}: {cause}). Fix: send "
                "a JSON object encoded as UTF-8, nested at most a few hundred levels deep.",
                code="invalid_json",
            )
        )
    err = ApiError(f"{exc.detail}: {request.method} {request.url.path}", code=str(exc.status_code))
    err.status = exc.status_code
    return _error_response(err)


def _as_api_error(err: BaseException) -> ApiError:
    cause = _cause(err)
    if isinstance(cause, ApiError):
        return cause
    if isinstance(cause, BackPressureError):
        return Overloaded(
            "The server is overloaded: every model replica's queue is full (max_queued_requests). "
            "Fix: retry after a short wait, or scale up (num_replicas / autoscaling_config).",
            code="overloaded",
        )
    logger.exception("request failed", exc_info=err)
    return InternalError(f"The server failed to answer: {type(cause).__name__}: {cause}. See the replica's log.")


async def _server_sent_events(stream: Any) -> AsyncIterator[str]:
    try:
        async for chunks in stream:
            for chunk in chunks:
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    except Exception as err:
        yield f"data: {json.dumps(_as_api_error(err).body())}\n\n"
    yield "data: [DONE]\n\n"


@serve.deployment(name="OpenAIIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
@serve.ingress(api)
class OpenAIIngress:
    """The OpenAI-compatible HTTP API in front of `LLMServer`."""

    def __init__(
        self, server: Any, base_model: str, adapters: list[str], api_key: str | None = None, scores: bool = False
    ) -> None:
        from lf_ray.constants import api_key as env_api_key

        self.server = server
        self.base_model = base_model
        self.adapters = list(adapters)
        self.api_key = api_key if api_key is not None else env_api_key()
        self.scores = scores  # a reward model behind it (`RewardServer`): scores, no chat

    def _authorize(self, request: Request) -> None:
        if not self.api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.api_key):
            raise InvalidApiKey()

    def _handle(self, model: str):
        from lf_ray.serve.api_errors import unknown_model

        if model == self.base_model:
            return self.server
        if model in self.adapters:
            return self.server.options(multiplexed_model_id=model)
        raise unknown_model(model, [self.base_model, *self.adapters])

    @api.get("/health")
    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "models": [self.base_model, *self.adapters]}

    @api.get("/v1/models")
    async def list_models(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        return ModelList(data=self._cards()).model_dump()

    @api.get("/v1/models/{model_id:path}")
    async def get_model(self, model_id: str, request: Request) -> dict[str, Any]:
        self._authorize(request)
        self._handle(model_id)
        return next(card for card in self._cards() if card.id == model_id).model_dump()

    def _cards(self) -> list[ModelCard]:
        base = ModelCard(id=self.base_model, root=self.base_model)
        return [base, *(ModelCard(id=name, root=name, parent=self.base_model) for name in self.adapters)]

    @api.get("/v1/stats")
    async def stats(self, request: Request) -> dict[str, Any]:
        """lf-ray's own: the batch sizes one model replica has decoded (dynamic batching at work)."""
        self._authorize(request)
        return await self.server.stats.remote()

    @api.post("/v1/chat/completions")
    async def chat_completions(self, body: ChatCompletionRequest, request: Request):
        self._authorize(request)
        return await self._answer("chat", body)

    @api.post("/v1/completions")
    async def completions(self, body: CompletionRequest, request: Request):
        self._authorize(request)
        return await self._answer("completion", body)

    @api.post("/v1/score/evaluation")
    async def score_evaluation(self, body: ScoreEvaluationRequest, request: Request):
        """LLaMA-Factory's route for a served reward model; any `model` name is taken, as LLaMA-Factory does."""
        self._authorize(request)
        if not self.scores:
            raise NotAllowed(
                f"`{self.base_model}` is a generative model: /v1/score/evaluation needs a reward model. Fix: serve "
                "an rm step's output with `stage: rm` in the serve config."
            )
        try:
            scores = await self.server.score.remote(body.messages, body.max_length)
        except Exception as err:
            return _error_response(_as_api_error(err))
        return ScoreEvaluationResponse(id=f"score-{uuid.uuid4().hex}", model=body.model, scores=scores).model_dump()

    async def _answer(self, kind: str, body: ChatCompletionRequest | CompletionRequest):
        if self.scores:
            raise NotAllowed(
                f"`{self.base_model}` is a reward model (`stage: rm`): it scores texts at POST /v1/score/evaluation "
                "and does not generate. Fix: serve a generative model for chat and completions."
            )
        handle = self._handle(body.model)
        payload = body.model_dump(exclude_unset=True)
        try:
            if not body.stream:
                return await handle.complete.remote(kind, payload)
            stream = handle.options(stream=True).stream.remote(kind, payload)
            await stream.__anext__()  # the replica accepted the request (or raised: answered below)
        except Exception as err:
            return _error_response(_as_api_error(err))
        return StreamingResponse(_server_sent_events(stream), media_type="text/event-stream")
