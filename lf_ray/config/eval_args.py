"""`EvalArguments`: the keys of the eval step beyond the shared model / data / generating ones.

LLaMA-Factory's `EvaluationArguments` (`llamafactory-cli eval`: task, task_dir, batch_size, lang, n_shot,
save_dir, download_mode), so its eval YAMLs parse unchanged, plus `compare_base_model`, lf-ray's own
before/after switch for adapters. `seed` is the training group's key, as in LF, where both groups share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EvalArguments:
    """Arguments pertaining to the evaluation step."""

    task: str | None = field(
        default=None,
        metadata={
            "help": "Name of the multiple-choice evaluation task: a folder of `task_dir` in MMLU's format "
            "(task.json, dev/*.csv, test/*.csv), e.g. demo_mmlu. Optionally suffixed with the split, as in LF "
            "(`mmlu_test`); lf-ray always scores the test split."
        },
    )
    task_dir: str = field(
        default="evaluation",
        metadata={"help": "Path to the folder containing the evaluation tasks (`builtin` for the shipped ones)."},
    )
    batch_size: int = field(default=4, metadata={"help": "The batch size per device for evaluation."})
    lang: Literal["en", "zh"] = field(default="en", metadata={"help": "Language used at evaluation."})
    n_shot: int = field(default=5, metadata={"help": "Number of examplars for few-shot learning."})
    save_dir: str | None = field(
        default=None, metadata={"help": "Path to save the evaluation results (the eval step's artifact in a pipeline)."}
    )
    download_mode: Literal["reuse_dataset_if_exists", "force_redownload"] = field(
        default="reuse_dataset_if_exists",
        metadata={"help": "Download mode used for the evaluation datasets (LF's key; lf-ray reads tasks from disk)."},
    )
    compare_base_model: bool = field(
        default=False,
        metadata={
            "help": "With adapters, also generate every prediction with the adapters disabled (the base model), "
            "written as `base_predict` beside `predict`: the before/after of training in one file."
        },
    )

    def __post_init__(self) -> None:
        if self.task and self.task.endswith(("_test", "_validation", "_train")):
            self.task = self.task.rsplit("_", 1)[0]
