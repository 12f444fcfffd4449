"""`pissa_convert`: save a PiSSA adapter also as a plain LoRA adapter, as LLaMA-Factory's `PissaConvertCallback`.

A PiSSA adapter starts from the principal singular vectors of each weight, and the base weights keep only the
residual, so it applies to a base that PEFT first re-initialises. The converted adapter
(`<output_dir>/pissa_converted`) applies to the original base weights like any LoRA adapter: it merges, mixes with
other adapters and serves as one. PEFT converts it from the adapter as it was before training
(`<output_dir>/pissa_init`, saved when training begins). Rank 0 writes both; the trained PiSSA adapter stays in
`output_dir`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

INITIAL_DIR = "pissa_init"
CONVERTED_DIR = "pissa_converted"


class PissaConvertCallback(TrainerCallback):
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if args.should_save and _is_peft(model):
            with _plain_lora_config(model):  # saved as plain LoRA: PEFT reads it as the conversion's start
                model.save_pretrained(os.path.join(args.output_dir, INITIAL_DIR))

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not (args.should_save and _is_peft(model)):
            return
        # PEFT's conversion turns the live adapter into the converted one: keep a copy and load it back after.
        with tempfile.TemporaryDirectory() as backup:
            with _plain_lora_config(model):
                model.save_pretrained(backup)
            target = os.path.join(args.output_dir, CONVERTED_DIR)
            initial = os.path.join(args.output_dir, INITIAL_DIR)
            model.save_pretrained(target, path_initial_model_for_weight_conversion=initial)
            model.load_adapter(backup, "default", is_trainable=True)
            model.set_adapter("default")
        logger.info("PiSSA adapter converted to plain LoRA in %s", target)


def _is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@contextlib.contextmanager
def _plain_lora_config(model: Any) -> Iterator[None]:
    """`init_lora_weights: true` while saving, so the saved config does not re-run PiSSA's SVD on load."""
    config = model.peft_config["default"]
    saved, config.init_lora_weights = config.init_lora_weights, True
    try:
        yield
    finally:
        config.init_lora_weights = saved
