"""Training stages as real Ray Train worker groups on CPU, with the builtin tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.tracking.trainer_log import read_trainer_log
from lf_ray.train.launcher import run_training

pytestmark = pytest.mark.usefixtures("ray_session")


def _cfg(tmp_path, stage: str, dataset: str, *overrides: str):
    base = [
        "model_name_or_path=builtin:tiny-llama",
        f"stage={stage}",
        "do_train=true",
        "finetuning_type=lora",
        "lora_rank=8",
        "dataset_dir=builtin",
        f"dataset={dataset}",
        "cutoff_len=96",
        "max_samples=16",
        "per_device_train_batch_size=4",
        "learning_rate=0.01",
        "num_train_epochs=6",
        "save_steps=1000",
    ]
    return prepare_config(None, [*base, *_two_workers(tmp_path), *overrides])


def _two_workers(tmp_path) -> list[str]:
    """Two 1-CPU workers logging every step into `tmp_path`."""
    return [
        "logging_steps=1",
        "report_to=none",
        "plot_loss=true",
        f"output_dir={tmp_path / 'out'}",
        f"ray_storage_path={tmp_path / 'ray'}",
        "ray_num_workers=2",
        'resources_per_worker={"CPU": 1}',
    ]


def _losses(output_dir):
    return [entry["loss"] for entry in read_trainer_log(Path(output_dir) / "trainer_log.jsonl") if entry.get("loss")]


STAGE_CASES = [
    ("sft", "identity", ["report_to=mlflow"]),
    ("sft", "identity", ["quantization_bit=4"]),  # QLoRA: bitsandbytes 4-bit base on each worker's CPU
    ("pt", "c4_demo", ["val_size=0.25", "eval_strategy=steps", "eval_steps=3"]),
    ("dpo", "dpo_en_demo", ["pref_loss=sigmoid"]),
    ("kto", "kto_en_demo", []),
    ("rm", "dpo_en_demo", []),
]


@pytest.mark.parametrize(("stage", "dataset", "extra"), STAGE_CASES, ids=lambda v: str(v))
def test_stage_trains_with_two_workers_and_writes_llamafactory_outputs(tmp_path, stage, dataset, extra):
    result = run_training(_cfg(tmp_path, stage, dataset, *extra), show_progress=False)
    out = Path(result.output_dir)
    losses = _losses(out)
    assert len(losses) >= 4 and losses[-1] < losses[0], losses  # overfitting a small fixed set
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert (out / "tokenizer_config.json").is_file()
    for name in ("train_results.json", "all_results.json", "trainer_state.json", "training_loss.png"):
        assert (out / name).is_file(), name
    log = read_trainer_log(out / "trainer_log.jsonl")
    steps = [entry["current_steps"] for entry in log if entry.get("loss")]
    assert steps == sorted(set(steps)) and log[-1]["total_steps"] == steps[-1]
    assert json.loads((out / "all_results.json").read_text())["train_loss"] > 0
    if "eval_strategy=steps" in extra:  # eval during training reports eval_loss
        assert [entry["eval_loss"] for entry in log if "eval_loss" in entry]
        assert json.loads((out / "all_results.json").read_text())["eval_loss"] > 0
    if "report_to=mlflow" in extra:
        _assert_mlflow_run(out, stage, len(steps))


def _assert_mlflow_run(output_dir, stage: str, logged_steps: int) -> str:
    from mlflow.tracking import MlflowClient

    from lf_ray.tracking.mlflow_tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string=f"params.output_dir = '{output_dir}'")
    assert run.data.tags["lf_ray.stage"] == stage and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [point.step for point in history] == list(range(1, logged_steps + 1))
    artifacts = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert {"training_loss.png", "trainer_log.jsonl"} <= artifacts
    return run.info.run_id


def _metric_steps(run_id: str, metric: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    from lf_ray.tracking.mlflow_tracking import tracking_uri

    return [point.step for point in MlflowClient(tracking_uri()).get_metric_history(run_id, metric)]


def test_bad_inputs_fail_on_the_driver_before_any_worker_starts(tmp_path):
    with pytest.raises(ConfigError, match="`lora_target` entry q_porj matches no Linear"):
        run_training(_cfg(tmp_path, "sft", "identity", "lora_target=q_porj"))
    with pytest.raises(ConfigError, match="freeze_trainable_layers: 5"):
        run_training(_cfg(tmp_path, "sft", "identity", "finetuning_type=freeze", "freeze_trainable_layers=5"))
    with pytest.raises(ConfigError, match=r"resume_from_checkpoint .* is not a readable checkpoint"):
        run_training(_cfg(tmp_path, "sft", "identity", f"resume_from_checkpoint={tmp_path / 'nope'}"))
    with pytest.raises(ConfigError, match="does not exist"):
        run_training(_cfg(tmp_path, "sft", "identity", "model_name_or_path=./no/such/model"))
    assert not (tmp_path / "ray").exists()  # no Ray Train run was ever created


def test_grpo_learns_a_reward_with_two_workers_and_resumes_from_its_checkpoint(tmp_path):
    """Each step samples 8 completions for each of 4 prompts, dealt across 2 workers; the share of low token ids
    (`tests.train.grpo_rewards:low_ids`) rises; a re-run with more steps resumes at the checkpoint of step 16."""
    keys = [
        "model_name_or_path=builtin:tiny-llama",
        "stage=grpo",
        "finetuning_type=full",
        "dataset_dir=builtin",
        "dataset=arithmetic_prompts",
        "cutoff_len=64",
        "max_samples=64",
        "reward_funcs=tests.train.grpo_rewards:low_ids",
        "num_generations=8",
        "max_completion_length=8",
        "grpo_beta=0.04",
        "temperature=1.0",
        "top_p=1.0",
        "top_k=0",
        "per_device_train_batch_size=16",
        "learning_rate=0.01",
        "lr_scheduler_type=constant",
        "save_steps=16",
        *_two_workers(tmp_path),
    ]
    first = prepare_config(None, [*keys, "max_steps=16", "report_to=mlflow"])
    out = Path(run_training(first, show_progress=False).output_dir)
    log = read_trainer_log(out / "trainer_log.jsonl")
    rewards = [entry["rewards/tests.train.grpo_rewards:low_ids/mean"] for entry in log if "kl" in entry]
    assert len(rewards) == 16 and sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.1, rewards
    assert all(entry["completions/mean_length"] <= 8 for entry in log if "kl" in entry)
    assert (out / "model.safetensors").is_file() and (out / "training_reward.png").is_file()
    run_id = _assert_mlflow_run(out, "grpo", logged_steps=16)
    assert _metric_steps(run_id, "reward") == _metric_steps(run_id, "kl") == list(range(1, 17))

    resumed = Path(run_training(prepare_config(None, [*keys, "max_steps=18"]), show_progress=False).output_dir)
    steps = [entry["current_steps"] for entry in read_trainer_log(resumed / "trainer_log.jsonl") if "kl" in entry]
    assert steps == list(range(1, 19))
