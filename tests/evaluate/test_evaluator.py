"""The eval step on a real local Ray: loss equal to the model's own, predictions, metrics and task scores."""

from __future__ import annotations

import json

import pytest

from lf_ray.config import prepare_config
from lf_ray.constants import DEMO_DATA_DIR
from lf_ray.errors import ConfigError
from lf_ray.evaluate.evaluator import _choice_task, plan_eval, run_eval
from tests.evaluate.lf_tasks import write_lf_task

TINY = ["model_name_or_path=builtin:tiny-llama", "template=llama3", "dataset_dir=builtin", "cutoff_len=96"]


def _cfg(*overrides: str):
    return prepare_config(None, [*TINY, *overrides])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval_dataset=identity_eval"], r"needs `save_dir`"),
        (["save_dir=/tmp/x", "stage=dpo", "eval_dataset=dpo_en_demo"], r"nothing to evaluate"),
        (
            ["save_dir=/tmp/x", "eval_dataset=identity_eval", "compare_base_model=true"],
            r"adapter_name_or_path` is not set",
        ),
        (["save_dir=/tmp/x", "task=mmlu", "task_dir=builtin"], r"task `mmlu` has no task.json"),
    ],
)
def test_plan_refuses_what_it_cannot_evaluate(overrides, message):
    with pytest.raises(ConfigError, match=message):
        plan_eval(_cfg(*overrides))


def test_plan_reads_lf_task_names_and_parts():
    plan = plan_eval(_cfg("save_dir=/tmp/x", "task=demo_mmlu_test", "task_dir=builtin"))
    assert plan.task is not None and plan.task.name == "demo_mmlu"
    assert (plan.loss, plan.predict) == (False, False)


def test_plan_finds_an_lf_task_folder_and_its_split(tmp_path):
    write_lf_task(tmp_path, "ceval")
    cfg = _cfg("save_dir=/tmp/x", "task=ceval_validation", f"task_dir={tmp_path}")
    assert (cfg.eval.task, cfg.eval.task_split, cfg.eval.lang) == ("ceval", "validation", None)
    assert plan_eval(cfg).task == tmp_path / "ceval"
    again = _cfg("save_dir=/tmp/x", "task=ceval", "task_split=validation", f"task_dir={tmp_path}")
    assert (again.eval.task, again.eval.task_split) == ("ceval", "validation")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task=mmlu_test", "task_split=validation"], r"asks for the test split but `task_split` is validation"),
        (["task=mmlu_train"], r"scores the dev split, which holds the few-shot examples\. Fix: use `task: mmlu_test`"),
    ],
)
def test_task_suffix_and_task_split_must_agree(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _cfg("save_dir=/tmp/x", *overrides)


def test_an_lf_task_is_scored_with_the_configs_split_and_lang(tmp_path):
    """The choice part of the eval step alone (no Ray): results, LF's score table and the flat metrics."""
    write_lf_task(tmp_path, "cmmlu")
    cfg = _cfg(f"save_dir={tmp_path}", "task=cmmlu_test", f"task_dir={tmp_path}", "n_shot=1", "lang=en")
    metrics = _choice_task(cfg, plan_eval(cfg).task, tmp_path)
    results = json.loads((tmp_path / "choice_results.json").read_text())
    assert (results["task"], results["split"], results["lang"], results["n_shot"]) == ("cmmlu", "test", "en", 1)
    assert list(results["per_category"]) == ["Humanities", "Other"]  # LF's order
    assert metrics == {
        "choice_accuracy": results["average"],
        "choice_agronomy": results["per_subject"]["agronomy"],
        "choice_chinese_history": results["per_subject"]["chinese_history"],
        "choice_category_humanities": results["per_category"]["Humanities"],
        "choice_category_other": results["per_category"]["Other"],
    }
    table = (tmp_path / "choice_results.log").read_text().splitlines()
    assert [line.split(":")[0] for line in table] == ["        Average", "     Humanities", "          Other"]


@pytest.mark.usefixtures("ray_session")
def test_loss_is_the_models_own_token_weighted_cross_entropy(tmp_path):
    import pyarrow.parquet as pq
    import torch

    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.evaluate.evaluator import _eval_split
    from lf_ray.model.loading import load_model

    cfg = _cfg(f"save_dir={tmp_path}", "eval_dataset=identity_eval")
    split = _eval_split(cfg, predict=False)
    result = run_eval(cfg)
    tokenizer, _ = tokenizer_spec(cfg).load()
    model, _ = load_model(cfg, for_training=False, tokenizer=tokenizer)
    total = tokens = 0.0
    for row in pq.read_table(split).to_pylist():
        labels = torch.tensor([row["labels"]])
        with torch.inference_mode():
            loss = model(input_ids=torch.tensor([row["input_ids"]]), labels=labels).loss.item()
        scored = int((labels[0, 1:] != -100).sum())
        total, tokens = total + loss * scored, tokens + scored
    assert result.metrics["eval_tokens"] == tokens > 0
    assert result.metrics["eval_loss"] == pytest.approx(total / tokens, rel=1e-5)
    assert result.metrics["perplexity"] == pytest.approx(2.718281828 ** (total / tokens), rel=1e-4)
    assert json.loads((tmp_path / "eval_results.json").read_text())["eval_loss"] == result.metrics["eval_loss"]


@pytest.mark.usefixtures("ray_session")
def test_predictions_metrics_and_a_choice_task_are_written(tmp_path):
    cfg = _cfg(
        f"save_dir={tmp_path}",
        "eval_dataset=identity_eval",
        "predict_with_generate=true",
        "do_sample=false",
        "max_new_tokens=6",
        "task=demo_mmlu",
        "task_dir=builtin",
        "n_shot=1",
    )
    result = run_eval(cfg)
    rows = [json.loads(line) for line in (tmp_path / "generated_predictions.jsonl").read_text().splitlines()]
    expected = json.loads((DEMO_DATA_DIR / "identity_eval.json").read_text())
    assert [row["label"] for row in rows] == [item["output"] for item in expected]  # in the dataset's order
    assert all(row["prompt"].startswith("<|begin_of_text|><|start_header_id|>user") for row in rows)
    assert all(len(row["predict"]) > 0 for row in rows) and "base_predict" not in rows[0]
    metrics = result.metrics
    assert set(metrics) >= {"eval_loss", "perplexity", "predict_bleu-4", "predict_rouge-l", "choice_accuracy"}
    assert metrics["predict_samples"] == 10 and 0 <= metrics["predict_bleu-4"] <= 100
    choice = json.loads((tmp_path / "choice_results.json").read_text())
    assert set(choice["per_subject"]) == {"arithmetic", "geography", "science"} and choice["n_shot"] == 1
    assert metrics["choice_accuracy"] == choice["average"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["metrics"] == json.loads(
        (tmp_path / "all_results.json").read_text()
    )
