"""Turn `model_name_or_path` into something `from_pretrained` can open, and open the tokenizer.

torch and transformers are imported inside the functions: importing this module stays cheap for the CLI.
A URI (`s3://...`, `gs://...`) is downloaded once per node into lf-ray's storage cache and loaded from there;
a hub id is passed through to transformers untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lf_ray import storage
from lf_ray.constants import BUILTIN_PREFIX
from lf_ray.errors import ModelError
from lf_ray.model.builtin import BUILTIN_MODELS, builtin_name, materialize_builtin, read_marker

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig

_PATH_PREFIXES = ("/", "./", "../", "~")


def looks_like_path(name_or_path: str) -> bool:
    """A hub id is `name` or `org/name`; anything else that names no folder was meant as a local path."""
    return name_or_path.startswith(_PATH_PREFIXES) or name_or_path.count("/") > 1


def hub_location(cfg: LfRayConfig) -> dict[str, Any]:
    """Where a hub id is fetched from: `model_revision` (branch, tag or commit) and `cache_dir`."""
    return {"revision": cfg.model.model_revision, "cache_dir": cfg.model.cache_dir}


def resolve_model_path(name_or_path: str, *, revision: str = "main", cache_dir: str | None = None) -> str:
    """`builtin:NAME` -> its built cache folder; a URI -> its node-local copy; a local folder -> itself; a hub id
    -> unchanged, or, with a `revision` other than main or a `cache_dir`, the folder of that snapshot (fetched once
    into `cache_dir`, else the Hugging Face cache; HF_HUB_OFFLINE reads the cache only)."""
    if name_or_path.startswith(BUILTIN_PREFIX):
        return str(materialize_builtin(name_or_path))
    if storage.is_uri(name_or_path):
        return str(storage.localize(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise ModelError(
            f"model_name_or_path {name_or_path!r} is a file, not a model folder. "
            "Fix: point it at the folder that holds config.json and the weights."
        )
    if looks_like_path(name_or_path):
        raise ModelError(
            f"Model folder {name_or_path!r} does not exist (resolved to {path.absolute()}). "
            f"Fix: check the path, or use a builtin model such as {BUILTIN_PREFIX}tiny-llama "
            f"(available: {', '.join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)})."
        )
    if revision != "main" or cache_dir:
        return _hub_snapshot(name_or_path, revision, cache_dir)
    return name_or_path


def _hub_snapshot(repo_id: str, revision: str, cache_dir: str | None) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, revision=revision, cache_dir=cache_dir)
    except Exception as err:  # the hub client's HTTP and cache errors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(
            f"Cannot fetch {repo_id} at revision {revision!r} into {cache_dir or 'the Hugging Face cache'}: {reason} "
            "Fix: check the id, the revision (a branch, tag or commit) and the network, or download it "
            f"(`hf download {repo_id} --revision {revision} --local-dir DIR`) and point model_name_or_path at DIR."
        ) from None


def resolve_adapter_path(path: str) -> str:
    """An adapter at a URI -> its node-local copy; a local path or hub id -> unchanged."""
    return str(storage.localize(path)) if storage.is_uri(path) else path


def default_template_for(model_name_or_path: str) -> str | None:
    """LLaMA-Factory template name of a builtin model (by name or by its built folder); None otherwise."""
    if model_name_or_path.startswith(BUILTIN_PREFIX):
        return BUILTIN_MODELS[builtin_name(model_name_or_path)].template
    path = Path(model_name_or_path).expanduser()
    marker = read_marker(path) if path.is_dir() else None
    return marker.get("template") if marker else None


def load_error(what: str, model_name_or_path: str, resolved: str, err: Exception) -> ModelError:
    where = model_name_or_path if resolved == model_name_or_path else f"{model_name_or_path} ({resolved})"
    return ModelError(
        f"Cannot load the {what} of {where}: {err} "
        f"Fix: point model_name_or_path at a folder made by save_pretrained, a hub id already in the local "
        f"Hugging Face cache, or a builtin model ({', '.join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)})."
    )


def load_tokenizer(
    model_name_or_path: str, *, revision: str = "main", cache_dir: str | None = None, **kwargs: Any
) -> PreTrainedTokenizerBase:
    """AutoTokenizer for a builtin name, local folder or hub id (at `revision`); failures become ModelError."""
    from transformers import AutoTokenizer

    resolved = resolve_model_path(model_name_or_path, revision=revision, cache_dir=cache_dir)
    try:
        return AutoTokenizer.from_pretrained(resolved, **kwargs)
    except (OSError, ValueError) as err:
        raise load_error("tokenizer", model_name_or_path, resolved, err) from err


def load_causal_lm(model_name_or_path: str, **kwargs: Any) -> PreTrainedModel:
    """AutoModelForCausalLM for a builtin name, local folder or hub id; failures become ModelError."""
    from transformers import AutoModelForCausalLM

    resolved = resolve_model_path(model_name_or_path)
    try:
        return AutoModelForCausalLM.from_pretrained(resolved, **kwargs)
    except (OSError, ValueError) as err:
        raise load_error("model", model_name_or_path, resolved, err) from err
