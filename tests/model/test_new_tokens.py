"""New tokens: added to the tokenizer every step loads, embeddings grown, new rows initialised as LLaMA-Factory does."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from lf_ray.config import prepare_config
from lf_ray.data.tokenizer_spec import tokenizer_spec
from lf_ray.errors import ConfigError
from lf_ray.export.merge import run_export
from lf_ray.model.loader import load_causal_lm
from lf_ray.model.loading import load_model

VOCAB = 2055  # the builtin tiny-llama tokenizer
HIDDEN = 128


def make_cfg(*overrides: str):
    return prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "finetuning_type=full", *overrides])


def embeddings(model) -> torch.Tensor:
    return model.get_input_embeddings().weight.detach()


@pytest.fixture(scope="module")
def base_embeddings(tiny_llama_path) -> torch.Tensor:
    return embeddings(load_causal_lm(tiny_llama_path))


def test_the_tokens_are_single_ids_in_every_steps_tokenizer_and_resize_vocab_turns_on():
    cfg = make_cfg("add_tokens=<think_a>,<think_b>", "add_special_tokens=<|tool|>")
    assert cfg.model.resize_vocab is True

    tokenizer, _ = tokenizer_spec(cfg).load()

    ids = tokenizer.encode("x <think_a><|tool|> y", add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids(["<think_a>", "<think_b>", "<|tool|>"]) == [VOCAB, VOCAB + 1, VOCAB + 2]
    assert VOCAB in ids and VOCAB + 2 in ids
    added = tokenizer.added_tokens_decoder
    assert added[VOCAB + 2].special and not added[VOCAB].special
    assert tokenizer.decode([VOCAB + 2], skip_special_tokens=True) == ""


def test_noise_init_keeps_the_old_rows_and_starts_new_ones_near_the_mean(base_embeddings):
    model, tokenizer = load_model(make_cfg("add_tokens=<a>,<b>,<c>"), for_training=True)

    table = embeddings(model)
    assert len(tokenizer) == VOCAB + 3 and table.shape == (2112, HIDDEN)  # padded up to a multiple of 64
    torch.testing.assert_close(table[:VOCAB], base_embeddings)
    new = table[VOCAB : VOCAB + 3]
    noise = new - base_embeddings.mean(dim=0)
    assert abs(noise.std().item() - 1 / math.sqrt(HIDDEN)) < 0.02  # LLaMA-Factory's std: 1 / sqrt(hidden size)
    assert not torch.allclose(new[0], new[1])


def test_the_noise_follows_the_seed_so_every_rank_starts_alike():
    first = embeddings(load_model(make_cfg("add_tokens=<a>"), for_training=True)[0])[VOCAB]
    again = embeddings(load_model(make_cfg("add_tokens=<a>"), for_training=True)[0])[VOCAB]
    other = embeddings(load_model(make_cfg("add_tokens=<a>", "seed=7"), for_training=True)[0])[VOCAB]
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.fixture
def descriptions(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("'<|svg_start|>': hello world\n'<|svg_end|>': the end\n")
    return path


def test_desc_init_starts_each_token_at_the_mean_of_its_description(descriptions, base_embeddings):
    cfg = make_cfg(f"new_special_tokens_config={descriptions}", "init_special_tokens=desc_init")
    model, tokenizer = load_model(cfg, for_training=True)

    table = embeddings(model)
    for token, text in {"<|svg_start|>": "hello world", "<|svg_end|>": "the end"}.items():
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert token_id >= VOCAB and tokenizer.added_tokens_decoder[token_id].special
        expected = base_embeddings[tokenizer.encode(text, add_special_tokens=False)].mean(dim=0)
        torch.testing.assert_close(table[token_id], expected)


def test_desc_init_with_noise_adds_the_noise_to_the_description_mean(descriptions, base_embeddings):
    cfg = make_cfg(f"new_special_tokens_config={descriptions}", "init_special_tokens=desc_init_w_noise")
    model, tokenizer = load_model(cfg, for_training=True)

    token_id = tokenizer.convert_tokens_to_ids("<|svg_start|>")
    expected = base_embeddings[tokenizer.encode("hello world", add_special_tokens=False)].mean(dim=0)
    noise = embeddings(model)[token_id] - expected
    assert 0.5 / math.sqrt(HIDDEN) < noise.std().item() < 1.5 / math.sqrt(HIDDEN)


def test_the_descriptions_file_replaces_add_special_tokens(descriptions):
    cfg = make_cfg(f"new_special_tokens_config={descriptions}", "add_special_tokens=<ignored>")
    tokenizer, _ = tokenizer_spec(cfg).load()
    assert "<|svg_end|>" in tokenizer.get_vocab() and "<ignored>" not in tokenizer.get_vocab()


def test_the_preprocessed_rows_change_with_the_tokens():
    from lf_ray.data.preprocess import plan_preprocess

    data = ("dataset_dir=builtin", "dataset=identity")
    with_token = plan_preprocess(make_cfg(*data, "add_tokens=<a>"))
    assert plan_preprocess(make_cfg(*data)).fingerprint != with_token.fingerprint


def test_export_keeps_the_tokens_and_the_grown_embeddings(tmp_path):
    out = tmp_path / "export"
    run_export(make_cfg("add_special_tokens=<|tool|>", f"export_dir={out}"))

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<|tool|>") == VOCAB
    assert '"vocab_size": 2112' in (out / "config.json").read_text()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["init_special_tokens=desc_init"], "`init_special_tokens: desc_init` starts each new token from its desc"),
        (["new_special_tokens_config=/nowhere/tokens.yaml"], "`new_special_tokens_config` /nowhere/tokens.yaml cannot"),
        (["add_tokens=<a>", "quantization_bit=4", "finetuning_type=lora"], "`resize_vocab` cannot resize"),
    ],
)
def test_bad_token_settings_are_refused_at_parse_time(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("`", ".").replace("/", ".")):
        make_cfg(*overrides)


def test_a_descriptions_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- <a>\n- <b>\n")
    with pytest.raises(ConfigError, match="holds list, not a mapping"):
        make_cfg(f"new_special_tokens_config={path}")
