"""`ChatService`: one loaded model and everything needed to answer OpenAI requests with it — the tokenizer and
template fixed exactly as training fixed them, the engine, the model ids (base + LoRA adapters) and the limits.

A Ray Serve model replica holds one (serve/deployments.py); `lf-ray chat` and the benchmark use one directly,
without Ray. No Ray here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray.constants import BUILTIN_PREFIX
from lf_ray.errors import ModelError
from lf_ray.model.loader import looks_like_path
from lf_ray.serve.api_errors import BadRequest, unknown_model
from lf_ray.serve.engine import GenerationRow, TransformersEngine
from lf_ray.serve.prompts import check_supported, encode_conversation, to_conversation
from lf_ray.serve.responses import PreparedRequest, ResponseBuilder
from lf_ray.serve.sampling import resolve_sampling
from lf_ray.serve.tool_stream import TOOL_CALL_OPENERS, TOOL_CALL_TOKENS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lf_ray.config import GeneratingArguments, LfRayConfig
    from lf_ray.data.templates import Template
    from lf_ray.serve.protocol import ChatCompletionRequest, CompletionRequest

logger = logging.getLogger(__name__)

FALLBACK_MAX_MODEL_LEN = 2048


def served_model_name(cfg: LfRayConfig) -> str:
    """The base model's id in the API: `served_model_name`, else the builtin name or the model folder's name."""
    if cfg.serve.served_model_name:
        return cfg.serve.served_model_name
    name = cfg.model.model_name_or_path or "model"
    return name.removeprefix(BUILTIN_PREFIX) if name.startswith(BUILTIN_PREFIX) else Path(name.rstrip("/")).name


def model_ids(cfg: LfRayConfig) -> list[str]:
    """Every id `/v1/models` lists: the base model first, then the LoRA adapters of `lora_modules` (Ray Serve LLM,
    for `infer_backend: vllm`, names them `base:adapter`)."""
    base = served_model_name(cfg)
    joined = cfg.model.infer_backend == "vllm"
    return [base, *(f"{base}:{name}" if joined else name for name in cfg.serve.lora_adapters())]


def check_lora_module(name: str, path: str) -> None:
    """A local adapter folder must hold adapter_config.json (found at start, not at the first request)."""
    folder = Path(path).expanduser()
    if (folder.exists() or looks_like_path(path)) and not (folder / "adapter_config.json").is_file():
        raise ModelError(
            f"`lora_modules` adapter `{name}`: {folder} holds no adapter_config.json. Fix: point it at the folder a "
            "LoRA training wrote (adapter_config.json + adapter_model.safetensors), e.g. the run's output_dir."
        )


class ChatService:
    """Turns OpenAI requests into engine rows and engine steps into OpenAI responses, for one base model."""

    def __init__(
        self,
        engine: TransformersEngine,
        template: Template,
        generating: GeneratingArguments,
        *,
        model_id: str,
        adapters: dict[str, str],
        max_model_len: int,
    ) -> None:
        self.engine = engine
        self.tokenizer: PreTrainedTokenizerBase = engine.tokenizer
        self.template = template
        self.generating = generating
        self.model_id = model_id
        self.adapters = adapters
        self.max_model_len = max_model_len
        self.openers = TOOL_CALL_OPENERS.get(template.format_tools.tool_format, ())

    @classmethod
    def from_config(cls, cfg: LfRayConfig) -> ChatService:
        """Load the tokenizer + template (as training fixed them) and the model (adapter_name_or_path merged)."""
        import torch

        from lf_ray.data.tokenizer_spec import tokenizer_spec
        from lf_ray.model.loading import load_model

        tokenizer, template = tokenizer_spec(cfg).load()
        model, tokenizer = load_model(cfg, for_training=False, tokenizer=tokenizer)
        if torch.cuda.is_available():
            model = model.to("cuda")
        tool_format = template.format_tools.tool_format
        keep = [t for t in TOOL_CALL_TOKENS.get(tool_format, ()) if t in tokenizer.get_vocab()]
        engine = TransformersEngine(model, tokenizer, template.get_stop_token_ids(tokenizer), keep_tokens=keep)
        adapters = cfg.serve.lora_adapters()
        for name, path in adapters.items():
            check_lora_module(name, path)
        limit = cfg.serve.max_model_len or getattr(model.config, "max_position_embeddings", None)
        return cls(
            engine,
            template,
            cfg.generating,
            model_id=served_model_name(cfg),
            adapters=adapters,
            max_model_len=int(limit or FALLBACK_MAX_MODEL_LEN),
        )

    def model_ids(self) -> list[str]:
        return [self.model_id, *self.adapters]

    def adapter_for(self, model: str) -> str | None:
        """None for the base model, the adapter's name for an adapter; 404 for anything else."""
        if model == self.model_id:
            return None
        if model in self.adapters:
            return model
        raise unknown_model(model, self.model_ids())

    # --- requests -> rows ------------------------------------------------------------------------------------

    def prepare_chat(self, request: ChatCompletionRequest) -> PreparedRequest:
        check_supported(request)
        adapter = self.adapter_for(request.model)
        conversation = to_conversation(request)
        prompt_ids = encode_conversation(self.tokenizer, self.template, conversation)
        max_tokens = request.max_completion_tokens or request.max_tokens
        rows = self._rows(request, prompt_ids, adapter, max_tokens, param="messages")
        return self._prepared("chat", request, rows, len(prompt_ids), parse_tools=conversation[2] is not None)

    def prepare_completion(self, request: CompletionRequest) -> PreparedRequest:
        """Text completion: the raw prompt (no chat template), tokenized as the tokenizer does by default."""
        check_supported(request)
        adapter = self.adapter_for(request.model)
        if not isinstance(request.prompt, str) and len(request.prompt) != 1:
            raise BadRequest(
                f"`prompt` is a list of {len(request.prompt)} prompts; lf-ray takes one prompt per request. "
                "Fix: send one request per prompt (they are batched on the server anyway).",
                param="prompt",
            )
        text = request.prompt if isinstance(request.prompt, str) else request.prompt[0]
        prompt_ids = self.tokenizer.encode(text) or self._document_start()
        rows = self._rows(request, prompt_ids, adapter, request.max_tokens, param="prompt")
        return self._prepared("completion", request, rows, len(prompt_ids), parse_tools=False)

    def _document_start(self) -> list[int]:
        """What an empty prompt completes: the start of a new document, as with OpenAI's completions (which start
        from `<|endoftext|>`): the tokenizer's BOS token, else its EOS token."""
        start = self.tokenizer.bos_token_id
        start = self.tokenizer.eos_token_id if start is None else start
        if start is None:
            raise BadRequest(
                "`prompt` is empty, and this model's tokenizer has neither a BOS nor an EOS token to start a "
                "document from. Fix: send the text to complete.",
                param="prompt",
            )
        return [start]

    def _rows(self, request: Any, prompt_ids: list[int], adapter: str | None, max_tokens: int | None, *, param: str):
        if len(prompt_ids) >= self.max_model_len:
            raise BadRequest(
                f"This model's maximum context length is {self.max_model_len} tokens, but the {param} came to "
                f"{len(prompt_ids)} tokens, leaving no room for an answer. Fix: shorten the {param} "
                "(or raise `max_model_len` if the model supports longer inputs).",
                param=param,
                code="context_length_exceeded",
            )
        if max_tokens is not None and len(prompt_ids) + max_tokens > self.max_model_len:
            room = self.max_model_len - len(prompt_ids)
            raise BadRequest(
                f"This model's maximum context length is {self.max_model_len} tokens; the {param} came to "
                f"{len(prompt_ids)} tokens and {max_tokens} more were asked for. Fix: ask for at most {room} "
                "(max_tokens / max_completion_tokens), or leave it out to get what fits.",
                param="max_tokens",
                code="context_length_exceeded",
            )
        params = resolve_sampling(
            request, self.generating, budget=self.max_model_len - len(prompt_ids), max_tokens=max_tokens
        )
        rows = []
        for index in range(request.n):
            seed = None if params.seed is None else params.seed + index
            rows.append(GenerationRow(prompt_ids, dataclasses.replace(params, seed=seed), adapter))
        return rows

    def _prepared(self, kind: str, request: Any, rows: list[GenerationRow], prompt_tokens: int, *, parse_tools: bool):
        options = request.stream_options
        return PreparedRequest(
            kind=kind,  # type: ignore[arg-type]
            model=request.model,
            rows=rows,
            prompt_tokens=prompt_tokens,
            stream=request.stream,
            include_usage=bool(request.stream and options and options.include_usage),
            parse_tools=parse_tools,
        )

    def builder(self, prepared: PreparedRequest) -> ResponseBuilder:
        return ResponseBuilder(prepared, self.template.extract_tool, self.openers)

    # --- without Serve (lf-ray chat, benchmarks, tests) ------------------------------------------------------

    def stream(self, prepared: PreparedRequest) -> Iterator[dict[str, Any]]:
        """The stream chunks of one request, generated in this process."""
        if prepared.rows[0].adapter is not None:
            self.ensure_adapter(prepared.rows[0].adapter)
        builder = self.builder(prepared)
        yield from builder.start()
        for deltas in self.engine.generate(prepared.rows):
            yield from builder.step(deltas)

    def complete(self, prepared: PreparedRequest) -> dict[str, Any]:
        """The non-streaming response of one request, generated in this process."""
        if prepared.rows[0].adapter is not None:
            self.ensure_adapter(prepared.rows[0].adapter)
        builder = self.builder(prepared)
        for deltas in self.engine.generate(prepared.rows):
            builder.step(deltas)
        return builder.body()

    def ensure_adapter(self, name: str) -> None:
        """Load a `lora_modules` adapter into the engine if it is not there yet."""
        if name not in self.engine.adapters:
            self.engine.load_adapter(name, self.adapters[name])
            logger.info("Loaded LoRA adapter %s from %s", name, self.adapters[name])
