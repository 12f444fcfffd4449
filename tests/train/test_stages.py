"""Each stage's trainer overfits a small fixed batch of demo data: the training loss goes down.

CPU, builtin tiny-llama, LoRA on every linear layer (applied here with `peft.get_peft_model`), no Ray.
"""

from __future__ import annotations

import datasets
import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from lf_ray.config import prepare_config
from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.packing import pack_supervised
from lf_ray.data.preprocess import encode_table
from lf_ray.data.processors import EncodeSettings, processor_kind
from lf_ray.data.tokenizer_spec import tokenizer_spec
from lf_ray.errors import ConfigError
from lf_ray.model.loader import load_causal_lm
from lf_ray.stages import STAGES, TRAINABLE_STAGES
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer
from lf_ray.train.stages.base import reference_model
from lf_ray.train.stages.metrics import predicted_tokens, token_accuracy

CUTOFF = 64
ROWS = 8
DEMO = {"pt": "c4_demo", "sft": "alpaca_en_demo", "rm": "dpo_en_demo", "dpo": "dpo_en_demo", "kto": "kto_en_demo"}
TRAINING = (
    f"cutoff_len={CUTOFF}",
    "learning_rate=5e-3",
    "lr_scheduler_type=constant",
    "max_steps=10",
    "logging_steps=1",
    f"per_device_train_batch_size={ROWS}",
    "save_strategy='no'",
    "seed=0",
    "disable_tqdm=true",
)


def stage_config(stage: str, *overrides: str):
    model = ["model_name_or_path=builtin:tiny-llama", "dataset_dir=builtin", f"dataset={DEMO[stage]}"]
    return prepare_config(None, [*model, f"stage={stage}", *TRAINING, *overrides])


@pytest.fixture(scope="module")
def encoded():
    """stage → (tokenizer, the first tokenized rows of its demo dataset): tokenized once per module."""
    cache = {}

    def get(stage: str):
        if stage not in cache:
            cfg = stage_config(stage)
            tokenizer, template = tokenizer_spec(cfg).load()
            splits = load_canonical_splits(cfg.data, stage, 42)
            table = encode_table(splits.train, template, tokenizer, processor_kind(stage), EncodeSettings(CUTOFF))
            rows = [row for row in table.to_pylist() if row["_drop_reason"] is None]
            cache[stage] = tokenizer, rows
        return cache[stage]

    return get


def lora(model, task_type: str = "CAUSAL_LM") -> PeftModel:
    torch.manual_seed(0)
    return get_peft_model(model, LoraConfig(task_type=task_type, r=8, lora_alpha=16, target_modules="all-linear"))


def train(cfg, model, tokenizer, rows, tmp_path):
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    dataset = datasets.Dataset.from_list(rows)
    context = StageContext(cfg=cfg, model=model, tokenizer=tokenizer, training_args=args, train_dataset=dataset)
    trainer = build_trainer(context)
    trainer.train()
    return trainer


def losses(trainer) -> list[float]:
    values = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(values) == trainer.args.max_steps
    return values


def assert_goes_down(trainer) -> None:
    values = losses(trainer)
    assert values[0] > values[-1], values


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

    assert TRAINABLE_STAGES == ("pt", "sft", "rm", "dpo", "kto")
    for stage in TRAINABLE_STAGES:
        assert callable(importlib.import_module(STAGES[stage].trainer).build_trainer)
    assert set(get_args(Stage)) == set(STAGES)
