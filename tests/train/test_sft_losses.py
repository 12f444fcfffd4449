"""LLaMA-Factory's SFT loss variants (DFT, EAFT, ASFT): their values on hand-made logits, and training with each."""

from __future__ import annotations

import math

import datasets
import pytest
import torch
import torch.nn.functional as F

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.model.loader import load_causal_lm
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer
from lf_ray.train.stages.sft_losses import asft_loss, dft_loss, eaft_loss
from tests.train.stage_runs import ROWS, lora, losses, stage_config

LOGITS = torch.tensor([[[2.0, 0.0, -1.0, 0.5], [0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.0]]])
LABELS = torch.tensor([[-100, 0, -100, 1]])  # positions 0 and 2 predict labels 0 and 1; position 1 predicts -100


def answer_losses() -> torch.Tensor:
    """Cross-entropy of the two answer tokens, written out: -log softmax(logits[t])[label[t + 1]]."""
    return torch.stack([-F.log_softmax(LOGITS[0, 0], -1)[0], -F.log_softmax(LOGITS[0, 2], -1)[1]])


def test_dft_weighs_each_tokens_loss_by_its_probability():
    ce = answer_losses()
    expected = (ce * torch.exp(-ce)).mean()
    torch.testing.assert_close(dft_loss({"logits": LOGITS}, LABELS), expected)
    summed = dft_loss({"logits": LOGITS}, LABELS, num_items_in_batch=4)
    torch.testing.assert_close(summed, (ce * torch.exp(-ce)).sum() / 4)


def test_dft_passes_no_gradient_through_the_weight():
    logits = LOGITS.clone().requires_grad_()
    dft_loss({"logits": logits}, LABELS).backward()
    p = F.softmax(LOGITS[0, 0], -1)
    expected = p[0] * (p - F.one_hot(torch.tensor(0), 4)) / 2  # weight p0 held constant, mean over 2 tokens
    torch.testing.assert_close(logits.grad[0, 0], expected)


def test_eaft_weighs_each_tokens_loss_by_its_entropy_to_the_power_alpha():
    ce = answer_losses()
    entropy = torch.stack([-(F.softmax(LOGITS[0, t], -1) * F.log_softmax(LOGITS[0, t], -1)).sum() for t in (0, 2)])
    for alpha in (1.0, 0.5):
        expected = (ce * (entropy / 3.0) ** alpha).mean()  # four choices: the top 20 are all of them
        torch.testing.assert_close(eaft_loss(alpha)({"logits": LOGITS}, LABELS), expected)


def test_asft_is_dft_plus_alpha_times_the_kl_to_the_reference():
    dft = dft_loss({"logits": LOGITS}, LABELS)
    torch.testing.assert_close(asft_loss(LOGITS, LOGITS.clone(), LABELS, alpha=0.5), dft)  # no distance: no KL
    reference = torch.zeros_like(LOGITS)  # uniform
    kl = torch.stack([(F.softmax(reference[0, t], -1) * (math.log(0.25) - F.log_softmax(LOGITS[0, t], -1))).sum()
                      for t in (0, 2)]).mean()  # fmt: skip
    torch.testing.assert_close(asft_loss(LOGITS, reference, LABELS, alpha=0.5), dft + 0.5 * kl)


def test_an_all_prompt_batch_has_zero_loss_and_a_gradient():
    logits = LOGITS.clone().requires_grad_()
    loss = dft_loss({"logits": logits}, torch.full_like(LABELS, -100))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def sft_trainer(encoded, tiny_llama_path, tmp_path, *keys: str):
    """An sft trainer on the first rows (one batch of all of them), not trained yet, and that batch collated."""
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", *keys)
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    trainer = build_trainer(StageContext(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, args, dataset))
    columns = ("input_ids", "attention_mask", "labels")
    batch = trainer.data_collator([{key: row[key] for key in columns} for row in rows[:ROWS]])
    return trainer, batch


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def cross_entropy(model, batch) -> float:
    return F.cross_entropy(
        logits_of(model, batch)[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100
    ).item()


@pytest.mark.parametrize(
    ("keys", "loss"),
    [(["use_dft_loss=true"], dft_loss), (["use_eaft_loss=true", "eaft_alpha=4.0"], eaft_loss(4.0))],
)
def test_sft_trains_with_the_variant_instead_of_cross_entropy(keys, loss, encoded, tiny_llama_path, tmp_path):
    trainer, batch = sft_trainer(encoded, tiny_llama_path, tmp_path, *keys)
    expected = loss({"logits": logits_of(trainer.model, batch)}, batch["labels"]).item()
    before = cross_entropy(trainer.model, batch)

    trainer.train()

    assert losses(trainer)[0] == pytest.approx(expected, rel=1e-4)  # the first step's loss is the variant's
    assert abs(expected - before) > 0.02  # and not the cross-entropy
    assert cross_entropy(trainer.model, batch) < before - 0.5  # what it teaches is still the answers


def test_asft_anchors_the_model_to_its_adapter_off_base(encoded, tiny_llama_path, tmp_path):
    trainer, batch = sft_trainer(encoded, tiny_llama_path, tmp_path, "use_asft_loss=true", "asft_alpha=1.0")
    assert type(trainer).__name__ == "AnchoredTrainer" and trainer.reference is None  # LoRA: the adapter switched off
    dft_at_start = dft_loss({"logits": logits_of(trainer.model, batch)}, batch["labels"]).item()

    trainer.train()

    assert losses(trainer)[0] == pytest.approx(dft_at_start, rel=1e-4)  # LoRA starts at the base: KL 0
    policy = logits_of(trainer.model, batch)
    with trainer.model.disable_adapter():
        base = logits_of(trainer.model, batch)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    kl_term = asft_loss(policy, base, batch["labels"], 1.0) - dft_loss({"logits": policy}, batch["labels"])
    assert kl_term.item() > 1e-5  # the model has moved away from its base
    torch.testing.assert_close(loss, asft_loss(policy, base, batch["labels"], 1.0))


def test_asft_with_an_explicit_reference_adds_the_kl_from_the_first_step(
    encoded, tiny_llama_path, sft_adapter, tmp_path
):
    from lf_ray.model.reference import load_reference_model

    keys = ("use_asft_loss=true", "ref_model=builtin:tiny-llama", f"ref_model_adapters={sft_adapter}")
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", *keys)
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    reference = load_reference_model(cfg, tokenizer)
    dataset = datasets.Dataset.from_list(rows[:ROWS])
    model = lora(load_causal_lm(tiny_llama_path))
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, dataset, ref_model=reference))
    assert trainer.reference is not None
    columns = ("input_ids", "attention_mask", "labels")
    batch = trainer.data_collator([{key: row[key] for key in columns} for row in rows[:ROWS]])
    expected = asft_loss(logits_of(model, batch), logits_of(reference, batch), batch["labels"], 0.1).item()
    trainer.train()
    assert losses(trainer)[0] == pytest.approx(expected, rel=1e-4)
    assert expected > dft_loss({"logits": logits_of(load_causal_lm(tiny_llama_path), batch)}, batch["labels"]).item()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["use_dft_loss=true", "use_asft_loss=true"], "`use_dft_loss` and `use_asft_loss` are alternative SFT losses"),
        (["use_eaft_loss=true", "stage=pt"], "`use_eaft_loss` changes the loss of stage sft, not of `stage: pt`"),
        (["eaft_alpha=0.5"], "`eaft_alpha: 0.5` weighs the loss `use_eaft_loss` turns on"),
    ],
)
def test_loss_variants_are_refused_where_they_would_do_nothing(keys, message):
    with pytest.raises(ConfigError, match=message.replace("`", ".")):
        prepare_config(None, ["model_name_or_path=builtin:tiny-llama", *keys])
