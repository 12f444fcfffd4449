"""apply_finetuning on the builtin tiny-llama (2 layers, hidden 128, intermediate 256, 4 heads / 2 KV heads of 32)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import peft
import pytest
import torch
from packaging.version import Version

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError, ModelError
from lf_ray.model.adapters import (
    apply_finetuning,
    count_parameters,
    create_loraplus_optimizer,
    find_all_linear_modules,
    trainable_parameter_summary,
)
from lf_ray.model.loader import load_causal_lm

ALL_LINEAR = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
IDS = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11]])


def make_cfg(*overrides: str):
    return prepare_config(None, ["model_name_or_path=builtin:tiny-llama", *overrides])


@pytest.fixture
def base_model(tiny_llama_path):
    torch.manual_seed(0)
    return load_causal_lm(tiny_llama_path)


def reward_model(path: str):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)


def trainable_names(model) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


def lora_param_count(config, rank: int, targets: list[str]) -> int:
    """rank * (in + out) per adapted Linear, from the model's config."""
    h, inter = config.hidden_size, config.intermediate_size
    q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
    shapes = {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    return config.num_hidden_layers * sum(rank * sum(shapes[t]) for t in targets)


def sgd_step(model, lr: float = 0.1) -> set[str]:
    """One forward + backward + SGD step on the trainable params; names of the params whose values changed."""
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    model(input_ids=IDS, labels=IDS).loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr).step()
    return {name for name, param in model.named_parameters() if not torch.equal(before[name], param.detach())}


@torch.no_grad()
def logits_of(model) -> torch.Tensor:
    model.eval()
    return model(input_ids=IDS).logits


# --- find_all_linear_modules --------------------------------------------------------------------------------


def test_find_all_linear_modules_skips_the_output_heads(base_model, tiny_llama_path):
    assert find_all_linear_modules(base_model) == ALL_LINEAR  # no lm_head
    assert find_all_linear_modules(reward_model(tiny_llama_path)) == ALL_LINEAR  # no score


# --- LoRA -------------------------------------------------------------------------------------------------


def test_lora_on_all_linear_layers_trains_rank_times_in_plus_out(base_model):
    total_before = count_parameters(base_model)[1]
    model = apply_finetuning(base_model, make_cfg("lora_rank=8"), is_trainable=True)

    trainable, total = count_parameters(model)
    expected = lora_param_count(base_model.config, 8, ALL_LINEAR)
    assert expected == 2 * 8 * (256 + 192 + 192 + 256 + 384 + 384 + 384) == 32_768
    assert trainable == expected
    assert total == total_before + expected
    assert all(".lora_A." in name or ".lora_B." in name for name in trainable_names(model))
    assert trainable_parameter_summary(model) == (
        f"trainable params: 32,768 || all params: {total:,} || trainable%: {100 * 32_768 / total:.4f}"
    )


def test_lora_explicit_targets(base_model):
    model = apply_finetuning(base_model, make_cfg("lora_target=q_proj,v_proj", "lora_rank=4"), is_trainable=True)

    assert count_parameters(model)[0] == lora_param_count(base_model.config, 4, ["q_proj", "v_proj"]) == 2 * 4 * 448
    assert {re.sub(r"\.lora_[AB]\..*", "", n).split(".")[-1] for n in trainable_names(model)} == {"q_proj", "v_proj"}
    assert model.peft_config["default"].lora_alpha == 8  # rank * 2, resolved by the config


def test_lora_all_plus_an_extra_target_adds_it(base_model):
    model = apply_finetuning(base_model, make_cfg("lora_target=all,embed_tokens"), is_trainable=True)

    assert set(model.peft_config["default"].target_modules) == {*ALL_LINEAR, "embed_tokens"}
    assert any("embed_tokens.lora_embedding_A" in name for name in trainable_names(model))


def test_additional_target_is_trained_fully_and_saved(base_model):
    model = apply_finetuning(base_model, make_cfg("additional_target=embed_tokens,norm"), is_trainable=True)

    extra = {n.removeprefix("base_model.model.model.") for n in trainable_names(model) if "lora_" not in n}
    targets = {"embed_tokens", "norm"}
    if Version(peft.__version__) < Version("0.22"):  # PEFT 0.21 matched by suffix: `norm` took each *_layernorm
        targets |= {f"layers.{i}.{n}" for i in (0, 1) for n in ("input_layernorm", "post_attention_layernorm")}
    assert extra == {f"{m}.modules_to_save.default.weight" for m in targets}


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["use_dora=true"], id="dora"),
        pytest.param(["use_rslora=true"], id="rslora"),
        pytest.param(["pissa_init=true", "pissa_iter=4"], id="pissa_niter"),
        pytest.param(["pissa_init=true", "pissa_iter=-1"], id="pissa_svd"),
    ],
)
def test_lora_variants_train_only_their_parameters(base_model, overrides):
    model = apply_finetuning(base_model, make_cfg(*overrides), is_trainable=True)
    model.train()
    trainable = trainable_names(model)

    changed = sgd_step(model)

    assert changed and changed <= trainable
    assert any(".lora_B." in name for name in changed)


def test_dora_adds_a_magnitude_vector_per_layer(base_model):
    model = apply_finetuning(base_model, make_cfg("use_dora=true", "lora_target=q_proj"), is_trainable=True)

    magnitudes = [n for n in trainable_names(model) if "lora_magnitude_vector" in n]
    assert len(magnitudes) == 2  # one per layer's q_proj
    assert count_parameters(model)[0] == lora_param_count(base_model.config, 8, ["q_proj"]) + 2 * 128


def test_lora_scaling_plain_and_rslora(tiny_llama_path):
    def scaling(*overrides: str) -> float:
        model = apply_finetuning(
            load_causal_lm(tiny_llama_path), make_cfg("lora_rank=8", *overrides), is_trainable=True
        )
        return model.base_model.model.model.layers[0].self_attn.q_proj.scaling["default"]

    assert scaling("lora_alpha=16") == 16 / 8
    assert scaling("lora_alpha=16", "use_rslora=true") == pytest.approx(16 / math.sqrt(8))


def test_pissa_keeps_the_model_output_at_initialisation(base_model):
    before = logits_of(base_model)
    q_weight = base_model.model.layers[0].self_attn.q_proj.weight.detach().clone()

    model = apply_finetuning(base_model, make_cfg("pissa_init=true", "pissa_iter=-1"), is_trainable=True)

    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    assert not torch.equal(layer.base_layer.weight, q_weight)  # the base holds the residual W - BA
    assert layer.lora_A["default"].weight.abs().sum() > 0  # principal components, not a zero / random start
    torch.testing.assert_close(logits_of(model), before, atol=1e-4, rtol=1e-4)


# --- continuing from an adapter -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_adapter(tiny_llama_path, tmp_path_factory):
    """A trained (non-zero) LoRA adapter on disk, with its trainable names and the logits it gives."""
    torch.manual_seed(0)
    model = apply_finetuning(load_causal_lm(tiny_llama_path), make_cfg(), is_trainable=True)
    model.train()
    sgd_step(model, lr=1.0)
    sgd_step(model, lr=1.0)  # the second step moves lora_A too (its gradient is zero while lora_B is)
    path = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(path)
    return str(path), trainable_names(model), logits_of(model)


def test_resuming_an_adapter_restores_its_outputs_and_trains_it(tiny_llama_path, saved_adapter):
    path, names, logits = saved_adapter

    model = apply_finetuning(
        load_causal_lm(tiny_llama_path), make_cfg(f"adapter_name_or_path={path}"), is_trainable=True
    )

    assert trainable_names(model) == names
    torch.testing.assert_close(logits_of(model), logits, atol=0, rtol=0)


def test_adapter_folder_loads_the_adapter_from_that_subfolder(tiny_llama_path, saved_adapter, tmp_path):
    path, names, logits = saved_adapter
    shutil.copytree(path, tmp_path / "run" / "adapter")
    overrides = [f"adapter_name_or_path={tmp_path / 'run'}", "adapter_folder=adapter"]
    model = apply_finetuning(load_causal_lm(tiny_llama_path), make_cfg(*overrides), is_trainable=True)
    assert trainable_names(model) == names
    torch.testing.assert_close(logits_of(model), logits, atol=0, rtol=0)


def test_an_adapter_for_inference_is_merged(tiny_llama_path, saved_adapter):
    path, _, logits = saved_adapter

    model = apply_finetuning(
        load_causal_lm(tiny_llama_path), make_cfg(f"adapter_name_or_path={path}"), is_trainable=False
    )

    assert type(model).__name__ == "LlamaForCausalLM"  # merged, no PEFT wrapper left
    torch.testing.assert_close(logits_of(model), logits, atol=1e-5, rtol=1e-5)


def test_create_new_adapter_merges_the_old_one_and_starts_fresh(tiny_llama_path, saved_adapter):
    path, _, logits = saved_adapter
    base = load_causal_lm(tiny_llama_path)
    base_q = base.model.layers[0].self_attn.q_proj.weight.detach().clone()

    model = apply_finetuning(
        base, make_cfg(f"adapter_name_or_path={path}", "create_new_adapter=true"), is_trainable=True
    )

    assert count_parameters(model)[0] == 32_768  # a fresh rank-8 adapter on all linear layers
    assert not torch.equal(model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight, base_q)
    torch.testing.assert_close(logits_of(model), logits, atol=1e-5, rtol=1e-5)  # new lora_B starts at zero


def test_zero3_cannot_merge_several_adapters(base_model, saved_adapter, monkeypatch):
    import transformers.integrations

    monkeypatch.setattr(transformers.integrations, "is_deepspeed_zero3_enabled", lambda: True)
    path = saved_adapter[0]
    with pytest.raises(ConfigError) as err:
        apply_finetuning(base_model, make_cfg(f"adapter_name_or_path={path},{path}"), is_trainable=True)
    assert str(err.value) == (
        "`adapter_name_or_path` lists 2 adapters, but with DeepSpeed ZeRO-3 or a quantized model they cannot be "
        "merged into the base. Fix: merge the earlier ones into the base model first (the export step) and list "
        "only the last."
    )


# --- reward model -------------------------------------------------------------------------------------------


def test_reward_model_lora_keeps_the_score_head_trainable(tiny_llama_path):
    model = apply_finetuning(reward_model(tiny_llama_path), make_cfg("stage=rm"), is_trainable=True)

    assert model.peft_config["default"].task_type == "SEQ_CLS"
    assert {n for n in trainable_names(model) if "lora_" not in n} == {
        "base_model.model.score.modules_to_save.default.weight"
    }
    assert count_parameters(model)[0] == 32_768 + 128  # LoRA + the 1x128 value head
    assert model(input_ids=IDS).logits.shape == (1, 1)


def test_reward_model_freeze_keeps_the_score_head_trainable(tiny_llama_path):
    model = apply_finetuning(
        reward_model(tiny_llama_path),
        make_cfg("stage=rm", "finetuning_type=freeze", "freeze_trainable_layers=1"),
        is_trainable=True,
    )
    assert "score.weight" in trainable_names(model)


# --- freeze and full ----------------------------------------------------------------------------------------

LAYER_PARAMS = [
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
]


def layer_params(index: int) -> set[str]:
    return {f"model.layers.{index}.{name}" for name in LAYER_PARAMS}


@pytest.mark.parametrize(("layers", "expected_layer"), [(1, 1), (-1, 0)], ids=["last-1", "first-1"])
def test_freeze_trains_the_chosen_layer(base_model, layers, expected_layer):
    model = apply_finetuning(
        base_model, make_cfg("finetuning_type=freeze", f"freeze_trainable_layers={layers}"), is_trainable=True
    )

    assert trainable_names(model) == layer_params(expected_layer)
    model.train()
    assert sgd_step(model) == layer_params(expected_layer)


def test_freeze_modules_and_extra_modules(base_model):
    cfg = make_cfg(
        "finetuning_type=freeze",
        "freeze_trainable_layers=1",
        "freeze_trainable_modules=mlp",
        "freeze_extra_modules=embed_tokens,norm",
    )
    model = apply_finetuning(base_model, cfg, is_trainable=True)

    assert trainable_names(model) == {
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.embed_tokens.weight",
        "model.norm.weight",  # the final norm only: no layer's input_layernorm
    }


def test_llama_pro_trains_only_the_expanded_blocks(tiny_llama_path):
    """Two layers, one expanded block: the block is every 2nd layer, i.e. layer 1."""
    freeze = apply_finetuning(
        load_causal_lm(tiny_llama_path),
        make_cfg("finetuning_type=freeze", "use_llama_pro=true", "freeze_trainable_layers=1"),
        is_trainable=True,
    )
    assert trainable_names(freeze) == layer_params(1)

    lora = apply_finetuning(
        load_causal_lm(tiny_llama_path), make_cfg("use_llama_pro=true", "freeze_trainable_layers=1"), is_trainable=True
    )
    assert {name.split(".lora_")[0] for name in trainable_names(lora)} == {
        f"base_model.model.model.layers.1.{name.rsplit('.', 1)[0]}" for name in LAYER_PARAMS if "proj" in name
    }


def test_full_trains_everything(base_model):
    base_model.requires_grad_(False)
    model = apply_finetuning(base_model, make_cfg("finetuning_type=full"), is_trainable=True)

    trainable, total = count_parameters(model)
    assert trainable == total == 854_400 - 32_768  # tiny-llama's size (the LoRA test adds 32,768 to it)
    model.train()
    assert sgd_step(model) == {name for name, _ in model.named_parameters()}


def test_not_trainable_leaves_full_and_freeze_models_alone(base_model):
    model = apply_finetuning(base_model, make_cfg("finetuning_type=freeze"), is_trainable=False)
    assert model is base_model
    assert count_parameters(model)[0] == count_parameters(model)[1]  # untouched; load_model freezes it


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_half_precision_trainable_params_are_upcast(tiny_llama_path, kind):
    model = apply_finetuning(
        load_causal_lm(tiny_llama_path, dtype=torch.bfloat16), make_cfg(f"finetuning_type={kind}"), is_trainable=True
    )
    dtypes = {param.dtype for param in model.parameters() if param.requires_grad}
    frozen = {param.dtype for param in model.parameters() if not param.requires_grad}
    assert dtypes == {torch.float32}
    assert frozen == ({torch.bfloat16} if kind == "lora" else set())


@pytest.mark.parametrize("keys", [["pure_bf16=true"], ["finetuning_type=full", "use_badam=true"]])
def test_pure_bf16_and_badam_keep_trainable_params_in_bf16(tiny_llama_path, keys):
    # BAdam keeps fp32 copies of the one block it trains (LLaMA-Factory leaves the model in half precision too)
    model = apply_finetuning(load_causal_lm(tiny_llama_path, dtype=torch.bfloat16), make_cfg(*keys), is_trainable=True)
    assert {param.dtype for param in model.parameters()} == {torch.bfloat16}


# --- errors -------------------------------------------------------------------------------------------------


def test_unknown_lora_target_lists_the_linear_layers(base_model):
    with pytest.raises(ConfigError) as err:
        apply_finetuning(base_model, make_cfg("lora_target=q_porj,v_proj"), is_trainable=True)
    assert str(err.value) == (
        "`lora_target` entry q_porj matches no Linear or Embedding layer of LlamaForCausalLM. Its linear layers are: "
        "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj. Fix: list some of those names "
        "(comma-separated), or use `lora_target: all` for every linear layer except the output head."
    )


def test_lora_target_that_is_not_a_layer_is_rejected(base_model):
    with pytest.raises(ConfigError, match="`lora_target` entry mlp matches no Linear or Embedding layer"):
        apply_finetuning(base_model, make_cfg("lora_target=mlp"), is_trainable=True)


def test_unknown_additional_target(base_model):
    with pytest.raises(ConfigError) as err:
        apply_finetuning(base_model, make_cfg("additional_target=embeddings"), is_trainable=True)
    message = str(err.value)
    assert message.startswith("`additional_target` entry embeddings matches no module of LlamaForCausalLM.")
    assert "embed_tokens, gate_proj, input_layernorm, k_proj, layers, lm_head, mlp, model, norm," in message
    assert "Fix: name the modules to train fully" in message


def test_missing_adapter_folder(base_model, tmp_path):
    missing = tmp_path / "no-such-adapter"
    with pytest.raises(ModelError) as err:
        apply_finetuning(base_model, make_cfg(f"adapter_name_or_path={missing}"), is_trainable=True)
    assert str(err.value) == (
        f"`adapter_name_or_path` entry {str(missing)!r} does not exist (resolved to {missing}). "
        "Fix: check the path; it should be the folder a LoRA training wrote, holding adapter_config.json."
    )


def test_adapter_folder_without_adapter_config(base_model, tmp_path):
    with pytest.raises(ModelError, match=r"is not a PEFT adapter folder: .* has no adapter_config\.json\. Fix: point"):
        apply_finetuning(base_model, make_cfg(f"adapter_name_or_path={tmp_path}"), is_trainable=True)


def test_unreadable_adapter_config(base_model, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"cannot read .*adapter_config.json: .* Fix: check the file's permissions"):
        apply_finetuning(base_model, make_cfg(f"adapter_name_or_path={tmp_path}"), is_trainable=True)


def test_adapter_of_another_architecture_is_rejected(base_model, saved_adapter, tmp_path):
    source = Path(saved_adapter[0])
    for file in source.iterdir():
        shutil.copy(file, tmp_path / file.name)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    config["target_modules"] = ["c_attn"]  # as a GPT-2 adapter would name its attention
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))

    with pytest.raises(ModelError) as err:
        apply_finetuning(base_model, make_cfg(f"adapter_name_or_path={tmp_path}"), is_trainable=True)
    message = str(err.value)
    assert message.startswith(f"Cannot load the adapter {str(tmp_path)!r} onto LlamaForCausalLM (builtin:tiny-llama): ")
    assert "c_attn" in message
    assert message.endswith(
        "Fix: use the adapter with the base model it was trained on (its adapter_config.json names it)."
    )


@pytest.mark.parametrize("layers", [3, -3])
def test_more_freeze_layers_than_the_model_has(base_model, layers):
    side = "last" if layers > 0 else "first"
    with pytest.raises(ConfigError) as err:
        apply_finetuning(
            base_model, make_cfg("finetuning_type=freeze", f"freeze_trainable_layers={layers}"), is_trainable=True
        )
    assert str(err.value) == (
        f"`freeze_trainable_layers: {layers}` asks for the {side} 3 layers, but LlamaForCausalLM has only 2. "
        "Fix: use a number from -2 to 2 (positive: the last n layers, negative: the first n)."
    )


def test_unknown_freeze_module(base_model):
    with pytest.raises(ConfigError) as err:
        apply_finetuning(
            base_model, make_cfg("finetuning_type=freeze", "freeze_trainable_modules=attn"), is_trainable=True
        )
    assert str(err.value) == (
        "`freeze_trainable_modules` names attn, which no layer of LlamaForCausalLM has. "
        "Fix: use `all` or some of: input_layernorm, mlp, post_attention_layernorm, self_attn."
    )


def test_unknown_freeze_extra_module(base_model):
    with pytest.raises(ConfigError) as err:
        apply_finetuning(
            base_model, make_cfg("finetuning_type=freeze", "freeze_extra_modules=final_norm"), is_trainable=True
        )
    assert str(err.value) == (
        "`freeze_extra_modules` names final_norm, which LlamaForCausalLM has nowhere outside its layers. "
        "Fix: use some of: embed_tokens, lm_head, model, norm."
    )


def test_freeze_with_nothing_trainable(base_model):
    with pytest.raises(ConfigError, match="leaves no parameter of LlamaForCausalLM trainable"):
        apply_finetuning(base_model, make_cfg("finetuning_type=freeze", "freeze_trainable_layers=0"), is_trainable=True)


# --- LoRA+ --------------------------------------------------------------------------------------------------


def test_loraplus_optimizer_groups(base_model, tmp_path):
    from transformers import TrainingArguments

    cfg = make_cfg("lora_target=q_proj,embed_tokens", "loraplus_lr_ratio=16", "loraplus_lr_embedding=1e-5")
    model = apply_finetuning(base_model, cfg, is_trainable=True)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.1, report_to=[])

    optimizer = create_loraplus_optimizer(model, args, cfg)

    lr_of = {id(p): (group["lr"], group["weight_decay"]) for group in optimizer.param_groups for p in group["params"]}
    by_name = {name: lr_of[id(param)] for name, param in model.named_parameters() if param.requires_grad}
    assert len(by_name) == len(lr_of)  # every trainable param, nothing else
    for name, (lr, decay) in by_name.items():
        if "lora_embedding_" in name:
            assert (lr, decay) == (1e-5, 0.1), name
        elif ".lora_B." in name:
            assert (lr, decay) == (pytest.approx(1.6e-2), 0.1), name
        else:
            assert ".lora_A." in name
            assert (lr, decay) == (1e-3, 0.1), name
    assert isinstance(optimizer, torch.optim.AdamW)


def test_loraplus_needs_a_ratio(base_model, tmp_path):
    from transformers import TrainingArguments

    cfg = make_cfg()
    model = apply_finetuning(base_model, cfg, is_trainable=True)
    with pytest.raises(ConfigError, match="LoRA\\+ needs `loraplus_lr_ratio`"):
        create_loraplus_optimizer(model, TrainingArguments(output_dir=str(tmp_path), report_to=[]), cfg)
