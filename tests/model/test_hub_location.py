"""`model_revision` and `cache_dir` pick the snapshot a hub id loads from; `split_special_tokens` tokenizes
special-token text as text. The hub cache here is built by hand and read offline, as the Hub leaves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from lf_ray.config import prepare_config
from lf_ray.data.tokenizer_spec import tokenizer_spec
from lf_ray.errors import ModelError
from lf_ray.model.loader import load_causal_lm
from lf_ray.model.loading import load_model

REPO = "lf-ray/tiny-hub"
IDS = torch.tensor([[5, 17, 42, 99]])


@pytest.fixture
def hub_cache(tiny_llama_path, tmp_path, monkeypatch) -> Path:
    """`cache_dir` holding two snapshots of REPO: `main`, and tag `v2` whose weights differ."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    repo = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}"
    for ref, commit, scale in (("main", "a" * 40, 1.0), ("v2", "b" * 40, 2.0)):
        snapshot = repo / "snapshots" / commit
        shutil.copytree(tiny_llama_path, snapshot)
        model = load_causal_lm(str(snapshot))
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(scale)
        model.save_pretrained(snapshot)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return tmp_path / "hub"


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.mark.parametrize(("revision", "commit"), [("main", "a" * 40), ("v2", "b" * 40), ("b" * 40, "b" * 40)])
def test_the_revision_picks_the_snapshot_the_model_and_tokenizer_load(hub_cache, revision, commit):
    cfg = prepare_config(None, [f"model_name_or_path={REPO}", f"cache_dir={hub_cache}", f"model_revision={revision}"])
    model, _ = load_model(cfg, for_training=False)
    snapshot = hub_cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit
    torch.testing.assert_close(logits(model), logits(load_causal_lm(str(snapshot))))
    tokenizer, _ = tokenizer_spec(cfg).load()
    assert Path(tokenizer.name_or_path) == snapshot


def test_a_revision_missing_from_the_cache_offline_is_a_clear_error(hub_cache):
    cfg = prepare_config(None, [f"model_name_or_path={REPO}", f"cache_dir={hub_cache}", "model_revision=v3"])
    with pytest.raises(ModelError, match=rf"Cannot fetch {REPO} at revision 'v3' into .*hub: .* Fix: check the id"):
        load_model(cfg, for_training=False)


def test_split_special_tokens_tokenizes_special_token_text_as_text():
    def ids(*overrides: str) -> list[int]:
        cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", *overrides])
        return tokenizer_spec(cfg).load()[0].encode("a<|eot_id|>b", add_special_tokens=False)

    assert len(ids()) == 3  # a, <|eot_id|>, b
    assert len(ids("split_special_tokens=true")) > 3 and 2052 not in ids("split_special_tokens=true")
