"""BAdam and Muon (`train.optimizers`): full tuning of the tiny model for a few steps on a fixed batch, no Ray.

Each test checks that the optimizer is the one asked for, what it keeps state for, which weights it changes, and
that the training loss goes down.
"""

from __future__ import annotations

import datasets
import pytest
import torch
from transformers import TrainerCallback

from lf_ray.model.loader import load_causal_lm
from lf_ray.model.loading import load_model
from lf_ray.stages import STAGES
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.optimizers import MuonWithAdamW, custom_optimizer
from lf_ray.train.stages import StageContext, build_trainer
from tests.train.stage_runs import ROWS, assert_goes_down, losses, stage_config

LAYER = "model.layers.{}."
PER_LAYER = 9  # q, k, v, o, gate, up, down projections and two norms


class RecordChangedLayers(TrainerCallback):
    """Which decoder layers each optimizer step changed, seen on layer i's query projection."""

    def __init__(self, model):
        self.queries = [layer.self_attn.q_proj.weight for layer in model.model.layers]
        self.changed: list[list[int]] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.before = [query.detach().clone() for query in self.queries]

    def on_step_end(self, args, state, control, **kwargs):
        self.changed.append([i for i, q in enumerate(self.queries) if not torch.equal(q, self.before[i])])


def badam_run(encoded, tmp_path, *keys: str):
    """Stage sft with BAdam on the model as a run loads it: gradient checkpointing on (reentrant), no fp32 upcast."""
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "finetuning_type=full", "use_badam=true", *keys)
    model, tokenizer = load_model(cfg, for_training=True, tokenizer=tokenizer)
    initial = {name: param.detach().clone() for name, param in model.named_parameters()}
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    optimizer = custom_optimizer(model, args, cfg)
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, dataset, optimizer=optimizer))
    recorder = RecordChangedLayers(model)
    trainer.add_callback(recorder)
    trainer.train()
    changed = {name for name, param in model.named_parameters() if not torch.equal(param, initial[name])}
    return trainer, model, initial, changed, recorder.changed


def test_badam_layer_mode_trains_one_decoder_layer_at_a_time(encoded, tmp_path):
    from badam import BAdamCallback, BlockOptimizer, clip_grad_norm_old_version

    keys = ["badam_switch_interval=3", "badam_switch_mode=descending", "badam_start_block=0", "badam_verbose=0"]
    trainer, model, _, changed, steps = badam_run(encoded, tmp_path, *keys, "weight_decay=0.05")
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer) is BlockOptimizer and type(optimizer.base_optimizer) is torch.optim.AdamW
    # BAdam's first block gets interval - 1 steps (its counter starts at the first switch), then 3 each;
    # descending from block 0 of 2 wraps round to 1
    assert steps == [[0], [0], [1], [1], [1], [0], [0], [0], [1], [1]]
    assert changed == {
        name for name, _ in model.named_parameters() if name.startswith(("model.layers.0.", "model.layers.1."))
    }
    # the embeddings, the final norm and the output head stay frozen; the last block (layer 1) is the trainable one
    trainable = [name for name, param in model.named_parameters() if param.requires_grad]
    assert len(trainable) == PER_LAYER and all(name.startswith(LAYER.format(1)) for name in trainable)
    # Adam state only for the fp32 copies of that block: reset at each switch
    state = optimizer.base_optimizer.state
    copies = [p for group in optimizer.base_optimizer.param_groups for p in group["params"]]
    assert len(state) == len(copies) == PER_LAYER
    assert all(p.dtype == torch.float32 and state[p]["exp_avg"].shape == p.shape for p in copies)
    assert {group["weight_decay"] for group in optimizer.base_optimizer.param_groups} == {0.05}  # not AdamW's 0.01
    # set-up of every stage's trainer: BAdam's callback took the embeddings' grad hook off (backward starts at the
    # block), the checkpointed layers still got gradients, and clipping takes sparse gradients
    assert any(isinstance(callback, BAdamCallback) for callback in trainer.callback_handler.callbacks)
    assert model.model.layers[0].gradient_checkpointing and not hasattr(model, "_require_grads_hook")
    assert trainer.accelerator.clip_grad_norm_.__func__ is clip_grad_norm_old_version
    assert_goes_down(trainer)


def test_badam_ratio_mode_updates_the_same_share_of_every_weight(encoded, tmp_path):
    from badam import BlockOptimizerRatio

    keys = ["badam_mode=ratio", "badam_update_ratio=0.1", "badam_mask_mode=scatter"]
    trainer, model, initial, changed, steps = badam_run(encoded, tmp_path, *keys)
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer) is BlockOptimizerRatio and optimizer.update_ratio == 0.1
    assert all(step == [0, 1] for step in steps)  # every layer, every step
    frozen = {"model.embed_tokens.weight", "lm_head.weight"}
    assert changed == set(initial) - frozen
    for name, param in model.named_parameters():
        if name not in frozen:
            entries = int(param.numel() * 0.1)  # the same entries every step: 1638 of a 128 x 128 query, 12 of a norm
            assert (param != initial[name]).sum().item() == entries, name
            assert optimizer.state[param]["exp_avg"].numel() == entries  # sparse Adam: state for those entries only
    norms = [entry["grad_norm"] for entry in trainer.state.log_history if "grad_norm" in entry]
    assert len(norms) == 10 and all(0 < norm < float("inf") for norm in norms)  # BAdam's sparse-gradient clipping
    assert_goes_down(trainer)


def test_muon_for_hidden_matrices_and_adamw_for_the_rest(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "finetuning_type=full", "use_muon=true", "max_steps=5", "weight_decay=0.01")
    model = load_causal_lm(tiny_llama_path)
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    context = StageContext(cfg, model, tokenizer, args, dataset, optimizer=custom_optimizer(model, args, cfg))
    trainer = build_trainer(context)
    trainer.train()
    optimizer = trainer.optimizer.optimizer
    assert type(optimizer) is MuonWithAdamW
    assert type(optimizer.muon) is torch.optim.Muon and type(optimizer.adamw) is torch.optim.AdamW
    names = {id(param): name for name, param in model.named_parameters()}
    muon = [names[id(p)] for group in optimizer.muon.param_groups for p in group["params"]]
    adamw = [names[id(p)] for group in optimizer.adamw.param_groups for p in group["params"]]
    assert len(muon) == 14 and all(name.endswith("proj.weight") for name in muon)  # every hidden Linear
    assert sorted(adamw) == sorted(["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"] + [
        f"model.layers.{i}.{norm}.weight" for i in (0, 1) for norm in ("input_layernorm", "post_attention_layernorm")
    ])  # fmt: skip
    (group,) = optimizer.muon.param_groups
    assert (group["momentum"], group["nesterov"], group["ns_steps"]) == (0.95, True, 5)
    assert (group["adjust_lr_fn"], group["weight_decay"]) == ("match_rms_adamw", 0.01)  # LLaMA-Factory's lr scaling
    assert {g["lr"] for g in optimizer.param_groups} == {5e-3}  # the scheduler sets Muon's and AdamW's
    params = dict(model.named_parameters())
    assert all(set(optimizer.state[params[name]]) == {"momentum_buffer"} for name in muon)  # one buffer, no Adam
    assert all(set(optimizer.state[params[name]]) == {"step", "exp_avg", "exp_avg_sq"} for name in adamw)
    assert len(losses(trainer)) == 5
    assert_goes_down(trainer)


def test_muon_state_dict_round_trips(tiny_llama_path, tmp_path):
    """What a checkpoint saves and a resumed run loads: both parts' state and groups, so the next step is the same."""
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-2, report_to="none")
    models = [load_causal_lm(tiny_llama_path) for _ in range(2)]
    optimizers = [
        custom_optimizer(m, args, stage_config("sft", "finetuning_type=full", "use_muon=true")) for m in models
    ]
    ids = torch.arange(3, 35).reshape(2, 16)

    def step(model, optimizer):
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()

    step(models[0], optimizers[0])
    models[1].load_state_dict(models[0].state_dict())
    torch.save(optimizers[0].state_dict(), tmp_path / "optimizer.pt")  # as the trainer's checkpoint does
    optimizers[1].load_state_dict(torch.load(tmp_path / "optimizer.pt"))
    assert optimizers[1].muon.state is optimizers[1].state and optimizers[1].adamw.param_groups[0]["betas"] == (
        0.9,
        0.999,
    )
    for model, optimizer in zip(models, optimizers, strict=True):
        step(model, optimizer)
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))


@pytest.mark.parametrize("stage", [stage for stage in STAGES if stage != "ppo"])  # ppo refuses BAdam
def test_every_stage_trainer_gets_badams_set_up(stage, encoded, tiny_llama_path, tmp_path):
    from badam import BAdamCallback, clip_grad_norm_old_version
    from transformers import AutoModelForSequenceClassification

    tokenizer, rows = encoded(stage)
    cfg = stage_config(stage, "finetuning_type=full", "use_badam=true", "badam_mode=ratio")
    if stage == "rm":
        model = AutoModelForSequenceClassification.from_pretrained(tiny_llama_path, num_labels=1)
    else:
        model = load_causal_lm(tiny_llama_path)
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    optimizer = custom_optimizer(model, args, cfg)
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, dataset, optimizer=optimizer))
    assert any(isinstance(callback, BAdamCallback) for callback in trainer.callback_handler.callbacks)
    assert trainer.accelerator.clip_grad_norm_.__func__ is clip_grad_norm_old_version
    head = model.score if stage == "rm" else model.lm_head
    assert head.weight.requires_grad is (stage == "rm")  # BAdam freezes an `lm_head`; a reward head trains


def test_muon_under_lora_orthogonalizes_the_adapter_matrices(tiny_llama_path, tmp_path):
    from tests.train.stage_runs import lora

    model = lora(load_causal_lm(tiny_llama_path))
    args = build_training_arguments(stage_config("sft", "use_muon=true"), output_dir=str(tmp_path))
    optimizer = custom_optimizer(model, args, stage_config("sft", "use_muon=true"))
    names = {id(param): name for name, param in model.named_parameters()}
    muon = [names[id(p)] for group in optimizer.muon.param_groups for p in group["params"]]
    assert len(muon) == 28 and all(".lora_A." in name or ".lora_B." in name for name in muon)  # A and B of 14
    assert optimizer.adamw is None and optimizer.parts == [optimizer.muon]  # nothing else trains


def test_badam_switch_interval_minus_one_keeps_the_start_block(tiny_llama_path, tmp_path):
    cfg = stage_config(
        "sft", "finetuning_type=full", "use_badam=true", "badam_switch_interval=-1", "badam_start_block=1"
    )
    model = load_causal_lm(tiny_llama_path)
    optimizer = custom_optimizer(model, build_training_arguments(cfg, output_dir=str(tmp_path)), cfg)
    for _ in range(3):
        for param in model.parameters():
            if param.requires_grad:
                param.grad = torch.ones_like(param)
        optimizer.step()
    trainable = {name.split(".")[2] for name, param in model.named_parameters() if param.requires_grad}
    assert optimizer.global_step == 3 and trainable == {"1"}  # BAdam alone would have switched at every step
