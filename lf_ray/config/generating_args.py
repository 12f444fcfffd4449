"""`GeneratingArguments`: decoding parameters for prediction, chat and serving.

Field names, defaults and help are LLaMA-Factory's (`hparams/generating_args.py`). `default_system` and
`enable_thinking` belong to `DataArguments` (where current LLaMA-Factory keeps them): each key lives in
exactly one group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GeneratingArguments:
    """Arguments pertaining to specify the decoding parameters."""

    do_sample: bool = field(
        default=True, metadata={"help": "Whether or not to use sampling, use greedy decoding otherwise."}
    )
    temperature: float = field(
        default=0.95, metadata={"help": "The value used to modulate the next token probabilities."}
    )
    top_p: float = field(
        default=0.7,
        metadata={
            "help": "The smallest set of most probable tokens with probabilities that add up to top_p "
            "or higher are kept."
        },
    )
    top_k: int = field(
        default=50,
        metadata={"help": "The number of highest probability vocabulary tokens to keep for top-k filtering."},
    )
    num_beams: int = field(default=1, metadata={"help": "Number of beams for beam search. 1 means no beam search."})
    max_length: int = field(
        default=1024,
        metadata={"help": "The maximum length the generated tokens can have. It can be overridden by max_new_tokens."},
    )
    max_new_tokens: int = field(
        default=1024,
        metadata={"help": "The maximum numbers of tokens to generate, ignoring the number of tokens in the prompt."},
    )
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "The parameter for repetition penalty. 1.0 means no penalty."}
    )
    length_penalty: float = field(
        default=1.0, metadata={"help": "Exponential penalty to the length that is used with beam-based generation."}
    )
    skip_special_tokens: bool = field(
        default=True, metadata={"help": "Whether or not to remove special tokens in the decoding."}
    )

    def generation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `model.generate`: `max_new_tokens` wins over `max_length` when positive."""
        kwargs = asdict(self)
        kwargs.pop("skip_special_tokens")
        kwargs.pop("max_length" if self.max_new_tokens > 0 else "max_new_tokens")
        return kwargs
