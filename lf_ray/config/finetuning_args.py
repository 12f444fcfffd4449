"""`FinetuningArguments`: the training objective (`stage`), the method and its knobs.

Field names, defaults and help are LLaMA-Factory's (`hparams/finetuning_args.py`); its mixins are kept as
themed files (`adapter_args`, `optimizer_args`, `rlhf_args`) and flattened here. Comma strings become
lists (`lora_target: q_proj,v_proj` → `["q_proj", "v_proj"]`, and the default `all` → `["all"]`);
`lora_alpha: null` becomes `lora_rank * 2` in `rules.resolve_defaults`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lf_ray.config.adapter_args import FreezeArguments, LoraArguments, OFTArguments
from lf_ray.config.coercion import split_commas
from lf_ray.config.grpo_args import GRPOArguments
from lf_ray.config.optimizer_args import ApolloArguments, BAdamArguments, GaloreArguments
from lf_ray.config.rlhf_args import RLHFArguments

Stage = Literal["pt", "sft", "rm", "ppo", "dpo", "kto", "grpo"]
FinetuningType = Literal["lora", "oft", "freeze", "full"]
_LIST_FIELDS = (
    "freeze_trainable_modules",
    "freeze_extra_modules",
    "lora_target",
    "additional_target",
    "oft_target",
    "galore_target",
    "apollo_target",
    "ref_model_adapters",
    "reward_funcs",
)


@dataclass
class SwanLabArguments:
    """Arguments pertaining to the SwanLab experiment tracker."""

    use_swanlab: bool = field(
        default=False,
        metadata={"help": "Whether or not to use the SwanLab (an experiment tracking and visualization tool)."},
    )
    swanlab_project: str | None = field(default="llamafactory", metadata={"help": "The project name in SwanLab."})
    swanlab_workspace: str | None = field(default=None, metadata={"help": "The workspace name in SwanLab."})
    swanlab_run_name: str | None = field(default=None, metadata={"help": "The experiment name in SwanLab."})
    swanlab_mode: Literal["cloud", "local", "offline"] = field(
        default="cloud",
        metadata={
            "help": "The mode of SwanLab: cloud (log in with swanlab_api_key or SWANLAB_API_KEY), local (for the "
            "`swanlab watch` dashboard, from `swanlab[dashboard]`) or offline (run files for `swanlab sync`; lf-ray's "
            "addition)."
        },
    )
    swanlab_api_key: str | None = field(
        default=None,
        metadata={"help": "The API key for SwanLab (cloud mode; SWANLAB_API_KEY keeps it out of the config)."},
    )
    swanlab_logdir: str | None = field(
        default=None, metadata={"help": "The log directory for SwanLab (lf-ray's default: `output_dir`/swanlog)."}
    )
    swanlab_lark_webhook_url: str | None = field(
        default=None, metadata={"help": "The Lark(飞书) webhook URL for SwanLab."}
    )
    swanlab_lark_secret: str | None = field(default=None, metadata={"help": "The Lark(飞书) secret for SwanLab."})


@dataclass
class FinetuningArguments(
    SwanLabArguments,
    BAdamArguments,
    ApolloArguments,
    GaloreArguments,
    GRPOArguments,
    RLHFArguments,
    OFTArguments,
    LoraArguments,
    FreezeArguments,
):
    """Arguments pertaining to which techniques we are going to fine-tuning with."""

    pure_bf16: bool = field(
        default=False,
        metadata={"help": "Whether or not to train model in purely bf16 precision (without AMP)."},
    )
    stage: Stage = field(default="sft", metadata={"help": "Which stage will be performed in training."})
    finetuning_type: FinetuningType = field(default="lora", metadata={"help": "Which fine-tuning method to use."})
    use_llama_pro: bool = field(
        default=False,
        metadata={"help": "Whether or not to make only the parameters in the expanded blocks trainable."},
    )
    use_adam_mini: bool = field(default=False, metadata={"help": "Whether or not to use the Adam-mini optimizer."})
    use_mca: bool = field(
        default=False,
        metadata={
            "help": "Whether or not to use MCA (Megatron Core Adapter) training. "
            "Controlled by USE_MCA environment variable."
        },
    )
    use_muon: bool = field(default=False, metadata={"help": "Whether or not to use the Muon optimizer."})
    use_hyper_parallel: bool = field(
        default=False,
        metadata={"help": "Whether or not to use HyperParallel distributed training backend (FSDP/TP)."},
    )
    hyper_parallel_args: str | None = field(
        default=None,
        metadata={"help": "Path to a JSON file containing HyperParallel strategy arguments (e.g., tp_size)."},
    )
    use_dft_loss: bool = field(default=False, metadata={"help": "Whether to use the DFT loss."})
    use_asft_loss: bool = field(default=False, metadata={"help": "Whether to use the ASFT loss."})
    asft_alpha: float = field(
        default=0.1,
        metadata={"help": "The alpha parameter for ASFT loss to control the power of adaptive weight."},
    )
    use_eaft_loss: bool = field(default=False, metadata={"help": "Whether to use the EAFT loss."})
    eaft_alpha: float = field(
        default=1.0,
        metadata={"help": "The alpha parameter for EAFT loss to control the power of adaptive weight."},
    )
    freeze_vision_tower: bool = field(
        default=True, metadata={"help": "Whether ot not to freeze the vision tower in MLLM training."}
    )
    freeze_multi_modal_projector: bool = field(
        default=True, metadata={"help": "Whether or not to freeze the multi modal projector in MLLM training."}
    )
    freeze_language_model: bool = field(
        default=False, metadata={"help": "Whether or not to freeze the language model in MLLM training."}
    )
    compute_accuracy: bool = field(
        default=False, metadata={"help": "Whether or not to compute the token-level accuracy at evaluation."}
    )
    disable_shuffling: bool = field(
        default=False, metadata={"help": "Whether or not to disable the shuffling of the training set."}
    )
    early_stopping_steps: int | None = field(
        default=None,
        metadata={"help": "Number of steps to stop training if the `metric_for_best_model` does not improve."},
    )
    plot_loss: bool = field(default=False, metadata={"help": "Whether or not to save the training loss curves."})
    include_effective_tokens_per_second: bool = field(
        default=False, metadata={"help": "Whether or not to compute effective tokens per second."}
    )

    def __post_init__(self) -> None:
        for name in _LIST_FIELDS:
            setattr(self, name, split_commas(getattr(self, name)))
        if self.reward_weights is not None:
            self.reward_weights = [float(weight) for weight in split_commas(self.reward_weights)]

    @property
    def use_ref_model(self) -> bool:
        """DPO needs a frozen reference model unless the loss is reference-free (ORPO, SimPO)."""
        return self.stage == "dpo" and self.pref_loss not in ("orpo", "simpo")
