"""resolve_model_path, load_tokenizer and default_template_for: what they accept and how they fail."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lf_ray.errors import ModelError
from lf_ray.model.loader import default_template_for, load_causal_lm, load_tokenizer, resolve_model_path


def test_builtin_resolves_to_its_cache_folder(lf_ray_home: Path) -> None:
    assert resolve_model_path("builtin:tiny-llama") == str(lf_ray_home / "models" / "tiny-llama")


def test_local_folder_and_hub_id_pass_through(tmp_path: Path) -> None:
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
    assert resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model_path("gpt2") == "gpt2"


@pytest.mark.parametrize("path", ["/no/such/model", "./no_such_model", "../no_such_model", "~/no_such", "a/b/c"])
def test_missing_local_path_is_an_error(path: str) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model_path(path)
    message = str(err.value)
    assert repr(path) in message
    assert "does not exist" in message
    assert "Fix:" in message


def test_a_file_is_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="is a file, not a model folder"):
        resolve_model_path(str(tmp_path / "model.gguf"))


def test_unknown_builtin_is_an_error() -> None:
    with pytest.raises(ModelError, match="Unknown builtin model builtin:xyz"):
        resolve_model_path("builtin:xyz")


def test_load_failures_become_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"(?s)Cannot load the tokenizer of {re.escape(str(tmp_path))}.*Fix:"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ModelError, match=f"(?s)Cannot load the model of {re.escape(str(tmp_path))}.*Fix:"):
        load_causal_lm(str(tmp_path))


def test_load_tokenizer_and_model_of_a_builtin() -> None:
    tokenizer = load_tokenizer("builtin:tiny-qwen")
    model = load_causal_lm("builtin:tiny-qwen")
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.config.vocab_size == len(tokenizer)


def test_default_template_for() -> None:
    assert default_template_for("builtin:tiny-llama") == "llama3"
    assert default_template_for("builtin:tiny-qwen") == "qwen"
    assert default_template_for("builtin:smollm2-135m") == "smollm2"
    assert default_template_for(resolve_model_path("builtin:tiny-qwen")) == "qwen"  # from the marker
    assert default_template_for("Qwen/Qwen2.5-0.5B-Instruct") is None
    assert default_template_for("/no/such/model") is None


def test_importing_the_loader_stays_light() -> None:
    code = "import sys, lf_ray.model.loader; print(sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
