"""`EvalArguments`: the keys of the eval step beyond the shared model / data / generating ones.

LLaMA-Factory's `EvaluationArguments` (`llamafactory-cli eval`: task, task_dir, batch_size, lang, n_shot,
save_dir, download_mode), so its eval YAMLs parse unchanged, plus lf-ray's own `task_split` (LF's task suffix
as a key of its own, so it survives a config round trip) and `compare_base_model` (a before/after switch for
adapters). `seed` is the training group's key, as in LF, where both groups share it.
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
            "help": "Name of the multiple-choice evaluation task: a folder of `task_dir`, either lf-ray's layout "
            "(task.json, dev/*.csv, test/*.csv; e.g. demo_mmlu) or LLaMA-Factory's mmlu / cmmlu / ceval folder "
            "(mapping.json with the CSV folders or the zip). Optionally suffixed with the split, as in LF "
            "(`mmlu_test`, `ceval_validation`), which sets `task_split`."
        },
    )
    task_split: Literal["test", "validation"] | None = field(
        default=None,
        metadata={
            "help": "The split of `task` that is scored (lf-ray's key; LF spells it as the task's suffix). "
            "Default: the suffix, else test. The dev split holds the few-shot examples."
        },
    )
    task_dir: str = field(
        default="evaluation",
        metadata={"help": "Path to the folder containing the evaluation tasks (`builtin` for the shipped ones)."},
    )
    batch_size: int = field(default=4, metadata={"help": "The batch size per device for evaluation."})
    lang: Literal["en", "zh"] | None = field(
        default=None,
        metadata={
            "help": "Language of the eval prompt. Default: the task's own (task.json's `lang`; zh for cmmlu and "
            "ceval, en for mmlu)."
        },
    )
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
        if not self.task or not self.task.endswith(("_test", "_validation", "_train")):
            return
        self.task, split = self.task.rsplit("_", 1)
        if split == "train":
            raise ValueError(
                f"`task: {self.task}_train` scores the dev split, which holds the few-shot examples. "
                f"Fix: use `task: {self.task}_test` or `{self.task}_validation`."
            )
        if self.task_split not in (None, split):
            raise ValueError(
                f"`task: {self.task}_{split}` asks for the {split} split but `task_split` is {self.task_split}. "
                "Fix: drop one of them."
            )
        self.task_split = split
