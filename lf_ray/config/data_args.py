"""`DataArguments`: which datasets, which template, and how to cut, mix and pack them.

Field names, defaults and help are LLaMA-Factory's (`hparams/data_args.py`). Like its `__post_init__`,
comma strings become lists (`dataset: identity,alpaca_en_demo` → `["identity", "alpaca_en_demo"]`);
cross-field checks live in `rules.py`, and derived defaults (`packing`, `media_dir`) in
`rules.resolve_defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lf_ray.config.coercion import split_commas


@dataclass
class DataArguments:
    """Arguments pertaining to what data we are going to input our model for training and evaluation."""

    template: str | None = field(
        default=None,
        metadata={"help": "Which template to use for constructing prompts in training and inference."},
    )
    dataset: str | list[str] | None = field(
        default=None,
        metadata={"help": "The name of dataset(s) to use for training. Use commas to separate multiple datasets."},
    )
    eval_dataset: str | list[str] | None = field(
        default=None,
        metadata={"help": "The name of dataset(s) to use for evaluation. Use commas to separate multiple datasets."},
    )
    dataset_dir: str = field(default="data", metadata={"help": "Path to the folder containing the datasets."})
    media_dir: str | None = field(
        default=None,
        metadata={"help": "Path to the folder containing the images, videos or audios. Defaults to `dataset_dir`."},
    )
    cutoff_len: int = field(
        default=2048, metadata={"help": "The cutoff length of the tokenized inputs in the dataset."}
    )
    train_on_prompt: bool = field(default=False, metadata={"help": "Whether or not to disable the mask on the prompt."})
    mask_history: bool = field(
        default=False,
        metadata={"help": "Whether or not to mask the history and train on the last turn only."},
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Treat the data as a stream too big for one process: the source files are read by Ray tasks "
            "whatever their size (the driver never holds the rows), and `max_steps` sets the length. Training "
            "still starts once the artifact is written (overlapping both is not built)."
        },
    )
    buffer_size: int = field(
        default=16384,
        metadata={
            "help": "Rows a training worker shuffles together: its share of the artifact is streamed in windows "
            "of this many rows, each shuffled (a full shuffle when the share fits in one window)."
        },
    )
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = field(
        default="concat",
        metadata={"help": "Strategy to use in dataset mixing (concat/interleave) (undersampling/oversampling)."},
    )
    interleave_probs: list[float] | None = field(
        default=None,
        metadata={"help": "Probabilities to sample data from datasets. Use commas to separate multiple datasets."},
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Overwrite the cached training and evaluation sets."}
    )
    preprocessing_batch_size: int = field(
        default=1000, metadata={"help": "The number of examples in one group in pre-processing."}
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "The number of processes to use for the pre-processing."}
    )
    max_samples: int | None = field(
        default=None,
        metadata={"help": "For debugging purposes, truncate the number of examples for each dataset."},
    )
    eval_num_beams: int | None = field(
        default=None,
        metadata={"help": "Number of beams to use for evaluation. This argument will be passed to `model.generate`"},
    )
    ignore_pad_token_for_loss: bool = field(
        default=True,
        metadata={"help": "Whether or not to ignore the tokens corresponding to the pad label in loss computation."},
    )
    val_size: float = field(
        default=0.0,
        metadata={"help": "Size of the validation set, should be an integer or a float in range `[0,1)`."},
    )
    eval_on_each_dataset: bool = field(
        default=False, metadata={"help": "Whether or not to evaluate on each dataset separately."}
    )
    packing: bool | None = field(
        default=None,
        metadata={"help": "Enable sequences packing in training. Will automatically enable in pre-training."},
    )
    neat_packing: bool = field(default=False, metadata={"help": "Enable sequence packing without cross-attention."})
    tool_format: str | None = field(
        default=None, metadata={"help": "Tool format to use for constructing function calling examples."}
    )
    default_system: str | None = field(
        default=None, metadata={"help": "Override the default system message in the template."}
    )
    enable_thinking: bool | None = field(
        default=True, metadata={"help": "Whether or not to enable thinking mode for reasoning models."}
    )
    preserve_thinking: bool = field(
        default=False,
        metadata={"help": "Whether or not to preserve thinking content in historical turns for reasoning models."},
    )
    tokenized_path: str | None = field(
        default=None,
        metadata={
            "help": "Path to save or load the tokenized datasets. "
            "If tokenized_path not exists, it will save the tokenized datasets. "
            "If tokenized_path exists, it will load the tokenized datasets."
        },
    )
    data_shared_file_system: bool = field(
        default=False, metadata={"help": "Whether or not to use a shared file system for the datasets."}
    )

    def __post_init__(self) -> None:
        self.dataset = split_commas(self.dataset)
        self.eval_dataset = split_commas(self.eval_dataset)
        if isinstance(self.interleave_probs, str):
            self.interleave_probs = [float(p) for p in split_commas(self.interleave_probs)]
