"""Fine-tuning-argument mixins for the memory-saving optimizers: GaLore, APOLLO and BAdam.

Flattened into `FinetuningArguments`; names, defaults and help are LLaMA-Factory's
(`hparams/finetuning_args.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class GaloreArguments:
    """Arguments pertaining to the GaLore algorithm."""

    use_galore: bool = field(
        default=False, metadata={"help": "Whether or not to use the gradient low-Rank projection (GaLore)."}
    )
    galore_target: str | list[str] = field(
        default="all",
        metadata={
            "help": "Name(s) of modules to apply GaLore. Use commas to separate multiple modules. "
            "Use `all` to specify all the linear modules."
        },
    )
    galore_rank: int = field(default=16, metadata={"help": "The rank of GaLore gradients."})
    galore_update_interval: int = field(
        default=200, metadata={"help": "Number of steps to update the GaLore projection."}
    )
    galore_scale: float = field(default=2.0, metadata={"help": "GaLore scaling coefficient."})
    galore_proj_type: Literal["std", "reverse_std", "right", "left", "full"] = field(
        default="std", metadata={"help": "Type of GaLore projection."}
    )
    galore_layerwise: bool = field(
        default=False, metadata={"help": "Whether or not to enable layer-wise update to further save memory."}
    )


@dataclass
class ApolloArguments:
    """Arguments pertaining to the APOLLO algorithm."""

    use_apollo: bool = field(default=False, metadata={"help": "Whether or not to use the APOLLO optimizer."})
    apollo_target: str | list[str] = field(
        default="all",
        metadata={
            "help": "Name(s) of modules to apply APOLLO. Use commas to separate multiple modules. "
            "Use `all` to specify all the linear modules."
        },
    )
    apollo_rank: int = field(default=16, metadata={"help": "The rank of APOLLO gradients."})
    apollo_update_interval: int = field(
        default=200, metadata={"help": "Number of steps to update the APOLLO projection."}
    )
    apollo_scale: float = field(default=32.0, metadata={"help": "APOLLO scaling coefficient."})
    apollo_proj: Literal["svd", "random"] = field(
        default="random", metadata={"help": "Type of APOLLO low-rank projection algorithm (svd or random)."}
    )
    apollo_proj_type: Literal["std", "right", "left"] = field(
        default="std", metadata={"help": "Type of APOLLO projection."}
    )
    apollo_scale_type: Literal["channel", "tensor"] = field(
        default="channel", metadata={"help": "Type of APOLLO scaling (channel or tensor)."}
    )
    apollo_layerwise: bool = field(
        default=False, metadata={"help": "Whether or not to enable layer-wise update to further save memory."}
    )
    apollo_scale_front: bool = field(
        default=False,
        metadata={"help": "Whether or not to use the norm-growth limiter in front of gradient scaling."},
    )


@dataclass
class BAdamArguments:
    """Arguments pertaining to the BAdam optimizer."""

    use_badam: bool = field(default=False, metadata={"help": "Whether or not to use the BAdam optimizer."})
    badam_mode: Literal["layer", "ratio"] = field(
        default="layer", metadata={"help": "Whether to use layer-wise or ratio-wise BAdam optimizer."}
    )
    badam_start_block: int | None = field(
        default=None, metadata={"help": "The starting block index for layer-wise BAdam."}
    )
    badam_switch_mode: Literal["ascending", "descending", "random", "fixed"] | None = field(
        default="ascending", metadata={"help": "the strategy of picking block to update for layer-wise BAdam."}
    )
    badam_switch_interval: int | None = field(
        default=50,
        metadata={
            "help": "Number of steps to update the block for layer-wise BAdam. Use -1 to disable the block update."
        },
    )
    badam_update_ratio: float = field(default=0.05, metadata={"help": "The ratio of the update for ratio-wise BAdam."})
    badam_mask_mode: Literal["adjacent", "scatter"] = field(
        default="adjacent",
        metadata={
            "help": "The mode of the mask for BAdam optimizer. "
            "`adjacent` means that the trainable parameters are adjacent to each other, "
            "`scatter` means that trainable parameters are randomly choosed from the weight."
        },
    )
    badam_verbose: int = field(
        default=0,
        metadata={
            "help": "The verbosity level of BAdam optimizer. "
            "0 for no print, 1 for print the block prefix, 2 for print trainable parameters."
        },
    )
