"""Each stage's trainer overfits a small fixed batch of demo data: the training loss goes down.

CPU, builtin tiny-llama, LoRA on every linear layer (applied here with `peft.get_peft_model`), no Ray.
"""

from __future__ import annotations

import datasets
import pytest
import torch

from lf_ray.data.packing import pack_supervised
from lf_ray.errors import ConfigError
from lf_ray.model.loader import load_causal_lm
from lf_ray.stages import STAGES
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer
from lf_ray.train.stages.base import reference_model
from lf_ray.train.stages.metrics import predicted_tokens, token_accuracy
from tests.train.stage_runs import CUTOFF, ROWS, assert_goes_down, lora, stage_config, train


@pytest.mark.parametrize("stage", ["pt", "sft"])
def test_language_modelling_stages_overfit(stage, encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded(stage)
    trainer = train(stage_config(stage), lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path)
    assert type(trainer).__name__ == {"pt": "Trainer", "sft": "Seq2SeqTrainer"}[stage]
    assert_goes_down(trainer)


def test_sft_reports_token_accuracy_when_asked(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "compute_accuracy=true", "max_steps=2")
    trainer = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path)
    assert 0.0 <= trainer.evaluate(datasets.Dataset.from_list(rows[:ROWS]))["eval_accuracy"] <= 1.0


def test_early_stopping_steps_gives_the_trainer_an_early_stopping_callback(encoded, tiny_llama_path, tmp_path):
    from transformers import EarlyStoppingCallback

    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "early_stopping_steps=3")
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    model = lora(load_causal_lm(tiny_llama_path))
    context = StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows))
    trainer = build_trainer(context)
    (stopper,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, EarlyStoppingCallback)]
    assert stopper.early_stopping_patience == 3


@pytest.mark.parametrize(
    ("keys", "optimizer", "scale"),
    [
        (["use_galore=true", "galore_rank=4", "galore_update_interval=5", "galore_scale=0.5"], "galore_torch", 0.5),
        (["use_apollo=true", "apollo_rank=4", "apollo_update_interval=5", "apollo_scale=8"], "apollo_torch", 8.0),
    ],
)
def test_galore_and_apollo_train_full_models_with_low_rank_state(
    keys, optimizer, scale, encoded, tiny_llama_path, tmp_path
):
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "finetuning_type=full", *keys)
    model = load_causal_lm(tiny_llama_path)
    trainer = train(cfg, model, tokenizer, rows[:ROWS], tmp_path)
    assert type(trainer.optimizer.optimizer).__module__.split(".")[0] == optimizer  # not torch's AdamW
    (low_rank,) = [group for group in trainer.optimizer.param_groups if "rank" in group]
    assert (low_rank["rank"], low_rank["update_proj_gap"], low_rank["scale"]) == (4, 5, scale)
    projected = {id(p) for p in low_rank["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in projected}
    assert len(names) == 14 and all(name.endswith("proj.weight") for name in names)  # every Linear but lm_head
    states = trainer.optimizer.state
    assert all("projector" in states[p] for p in low_rank["params"])
    assert_goes_down(trainer)


def test_adam_mini_keeps_one_second_moment_per_block(encoded, tiny_llama_path, tmp_path):
    from lf_ray.train.optimizers import custom_optimizer

    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "finetuning_type=full", "use_adam_mini=true")
    model = load_causal_lm(tiny_llama_path)
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    context = StageContext(cfg, model, tokenizer, args, dataset, optimizer=custom_optimizer(model, args, cfg))
    trainer = build_trainer(context)
    trainer.train()
    assert type(trainer.optimizer.optimizer).__name__ == "Adam_mini"
    query = model.model.layers[0].self_attn.q_proj.weight
    moment = trainer.optimizer.state[query]["vmean"]
    assert moment.numel() == model.config.num_attention_heads < query.numel()  # one per head, not per weight
    assert_goes_down(trainer)


def test_sft_with_neat_packing_overfits(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    packed, _ = pack_supervised(rows[: ROWS * 2], 2 * CUTOFF, tokenizer.pad_token_id, neat_packing=True)
    assert all(max(row["attention_mask"]) > 1 for row in packed)  # several sequences share each row
    cfg = stage_config("sft", "packing=true", "neat_packing=true", f"cutoff_len={2 * CUTOFF}")
    assert_goes_down(train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, packed, tmp_path))


def test_reward_model_learns_to_rank_the_pairs(encoded, tiny_llama_path, tmp_path):
    from transformers import AutoModelForSequenceClassification

    tokenizer, rows = encoded("rm")
    model = lora(AutoModelForSequenceClassification.from_pretrained(tiny_llama_path, num_labels=1), "SEQ_CLS")
    trainer = train(stage_config("rm"), model, tokenizer, rows[:ROWS], tmp_path)
    assert_goes_down(trainer)
    assert trainer.evaluate(datasets.Dataset.from_list(rows[:ROWS]))["eval_accuracy"] > 0.5


@pytest.mark.parametrize(
    ("overrides", "trainer_name"),
    [
        (("pref_loss=sigmoid",), "PreferenceTrainer"),
        (("pref_loss=orpo",), "OddsRatioTrainer"),
        (("pref_loss=simpo",), "SimPOTrainer"),
        (("pref_loss=kto_pair", "pref_ftx=0.5"), "PreferenceTrainer"),  # hand-written loss + TRL's sft term
        (("dpo_label_smoothing=0.1",), "PreferenceTrainer"),  # hand-written cDPO
    ],
    ids=["sigmoid", "orpo", "simpo", "kto_pair", "cdpo"],
)
def test_dpo_overfits(overrides, trainer_name, encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("dpo")
    cfg = stage_config("dpo", *overrides)
    trainer = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path)
    assert type(trainer).__name__ == trainer_name
    assert_goes_down(trainer)
    rewards = [entry["rewards/accuracies"] for entry in trainer.state.log_history if "rewards/accuracies" in entry]
    assert rewards[-1] > 0.5


def test_dpo_full_tuning_trains_against_a_frozen_copy(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("dpo")
    cfg = stage_config("dpo", "finetuning_type=full", "learning_rate=1e-3")
    model = load_causal_lm(tiny_llama_path)
    trainer = train(cfg, model, tokenizer, rows[:ROWS], tmp_path)
    assert trainer.ref_model is not model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert_goes_down(trainer)


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_under_lora_the_reference_is_the_base_model_and_checkpoints_hold_one_adapter(
    stage, encoded, tiny_llama_path, tmp_path
):
    tokenizer, rows = encoded(stage)
    cfg = stage_config(stage, "max_steps=1")
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    model = lora(load_causal_lm(tiny_llama_path))
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    context = StageContext(cfg=cfg, model=model, tokenizer=tokenizer, training_args=args, train_dataset=dataset)
    assert reference_model(context) is None
    trainer = build_trainer(context)
    assert trainer.ref_model is None
    assert list(model.peft_config) == ["default"]  # TRL's "ref" adapter copy is gone: the adapter is switched off
    trainer.save_model(str(tmp_path / "saved"))
    assert sorted(p.name for p in (tmp_path / "saved").iterdir() if p.is_dir()) == []


def first_step_margin(trainer) -> float:
    return next(entry["rewards/margins"] for entry in trainer.state.log_history if "rewards/margins" in entry)


def test_an_explicit_reference_replaces_the_adapter_off_base(encoded, tiny_llama_path, sft_adapter, tmp_path):
    """sft → dpo: the reference is the SFT model (base + its adapter), so the first step already sees a margin."""
    from lf_ray.model.reference import load_reference_model

    tokenizer, rows = encoded("dpo")
    cfg = stage_config("dpo", "max_steps=1", "ref_model=builtin:tiny-llama", f"ref_model_adapters={sft_adapter}")
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    reference = load_reference_model(cfg, tokenizer)
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    context = StageContext(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, args, dataset, ref_model=reference)
    trainer = build_trainer(context)
    assert trainer.ref_model is reference
    trainer.train()
    assert abs(first_step_margin(trainer)) > 1e-4  # the policy starts at the base, the reference is elsewhere

    default = train(stage_config("dpo", "max_steps=1"), lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS],
                    tmp_path / "default")  # fmt: skip
    assert first_step_margin(default) == 0.0  # adapter off = the policy itself at the first step


def test_kto_overfits(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("kto")
    batch = [row for row in rows if row["kto_tags"]][: ROWS // 2] + [row for row in rows if not row["kto_tags"]][:4]
    trainer = train(stage_config("kto"), lora(load_causal_lm(tiny_llama_path)), tokenizer, batch, tmp_path)
    assert type(trainer).__name__ == "FeedbackTrainer"
    assert trainer.args.train_sampling_strategy == "random"  # TRL's sequential-only check was passed, not kept
    assert_goes_down(trainer)


def test_kto_refuses_a_batch_of_one(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("kto")
    cfg = stage_config("kto", "per_device_train_batch_size=1")
    with pytest.raises(ConfigError, match="per_device_train_batch_size"):
        train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:2], tmp_path)


def test_hand_written_dpo_losses():
    from lf_ray.train.stages.dpo import hand_written_losses

    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    sigmoid = -torch.nn.functional.logsigmoid(0.5 * (chosen - rejected))
    torch.testing.assert_close(hand_written_losses("cdpo", chosen, rejected, 0.5, 0.0), sigmoid)
    flipped = -torch.nn.functional.logsigmoid(-0.5 * (chosen - rejected))
    torch.testing.assert_close(hand_written_losses("cdpo", chosen, rejected, 0.5, 0.1), 0.9 * sigmoid + 0.1 * flipped)
    # kto_pair: KL baselines are the clamped batch means, chosen 1.0 and rejected 0.0
    expected = torch.cat((1 - torch.sigmoid(0.5 * (chosen - 0.0)), 1 - torch.sigmoid(0.5 * (1.0 - rejected))))
    torch.testing.assert_close(hand_written_losses("kto_pair", chosen, rejected, 0.5, 0.0), expected)


def test_token_accuracy_scores_answer_tokens_one_position_ahead():
    from transformers import EvalPrediction

    logits = torch.zeros(2, 4, 10)
    for row, tokens in enumerate([[3, 4, 5, 0], [7, 1, 1, 1]]):  # position t predicts token t + 1
        logits[row, torch.arange(4), torch.tensor(tokens)] = 1.0
    labels = torch.tensor([[-100, 3, 4, 6], [-100, -100, 7, -100]])
    preds = predicted_tokens((logits,), labels)
    assert preds.tolist() == [[3, 4, 5, 0], [7, 1, 1, 1]]
    # row 1: 3 and 4 right, 6 wrong (2/3); row 2: 7 expected at position 1, predicted 1 (0/1)
    assert token_accuracy(EvalPrediction(preds.numpy(), labels.numpy()))["accuracy"] == pytest.approx(1 / 3)


def test_every_trainable_stage_of_the_table_has_a_builder_and_the_config_knows_every_stage():
    import importlib
    from typing import get_args

    from lf_ray.config.finetuning_args import Stage

    assert tuple(STAGES) == ("pt", "sft", "rm", "dpo", "kto", "grpo", "ppo")
    for stage in STAGES:
        assert callable(importlib.import_module(STAGES[stage].trainer).build_trainer)
    assert set(get_args(Stage)) == set(STAGES)


@pytest.mark.parametrize("ignore", [True, False])
def test_ignore_pad_token_for_loss_off_labels_the_padding_with_the_pad_id(ignore, encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", f"ignore_pad_token_for_loss={str(ignore).lower()}")
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    model = lora(load_causal_lm(tiny_llama_path))
    collator = build_trainer(StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows))).data_collator
    short, long = sorted(rows[:2], key=lambda row: len(row["input_ids"]))
    columns = ("input_ids", "attention_mask", "labels")
    labels = collator([{key: row[key] for key in columns} for row in (short, long)])["labels"][0]
    padding = labels[len(short["input_ids"]) :]
    assert len(padding) > 0 and set(padding.tolist()) == {-100 if ignore else tokenizer.pad_token_id}


def test_neftune_noise_alpha_adds_uniform_noise_to_the_embeddings_while_training(encoded, tiny_llama_path, tmp_path):
    """LLaMA-Factory's `neftune_noise_alpha` is transformers' NEFTune: embedding outputs get uniform noise of
    magnitude alpha / sqrt(sequence length x hidden size) in training, none afterwards."""
    from transformers import TrainerCallback

    ids = torch.tensor([[5, 17, 42, 99]])
    seen = []

    class Probe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):  # the model is in train mode
            embeddings = model.get_input_embeddings()
            with torch.no_grad():
                seen.append(embeddings(ids) - embeddings.weight[ids])

    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "neftune_noise_alpha=5", "max_steps=1")
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    model = lora(load_causal_lm(tiny_llama_path))
    context = StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows[:ROWS]), callbacks=[Probe()])
    build_trainer(context).train()

    (noise,) = seen
    bound = 5 / (4 * 128) ** 0.5
    assert noise.abs().max() <= bound and noise.abs().max() > bound / 2  # uniform on [-bound, bound]
    embeddings = model.get_input_embeddings()
    torch.testing.assert_close(embeddings(ids), embeddings.weight[ids])  # the hook is gone after training


def test_a_run_resumed_from_its_final_checkpoint_trains_no_further_step(encoded, tiny_llama_path, tmp_path):
    """transformers alone would resume at step 3 of max_steps 3 and train a 4th step."""
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", "max_steps=3", "save_strategy=steps", "save_steps=3", "per_device_train_batch_size=2")
    first = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path)
    assert first.state.global_step == 3 and (tmp_path / "checkpoint-3").is_dir()
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    context = StageContext(
        cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, args, datasets.Dataset.from_list(rows[:ROWS])
    )
    resumed = build_trainer(context)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    assert resumed.state.global_step == 3
    assert [entry["step"] for entry in resumed.state.log_history if "loss" in entry] == [1, 2, 3]
