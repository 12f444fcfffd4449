"""Planning: each step's layered config, fingerprints that change exactly where the config changed, the cache."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from lf_ray import storage
from lf_ray.constants import DEMO_DATA_DIR
from lf_ray.errors import ConfigError, LfRayError, StorageError
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline


def _raw(tmp_path) -> dict:
    return {
        "name": "tiny",
        "storage_path": str(tmp_path / "store"),
        "defaults": {"model_name_or_path": "builtin:tiny-llama", "template": "llama3", "dataset_dir": "builtin"},
        "steps": [
            {"id": "data", "uses": "preprocess", "with": {"dataset": "identity", "cutoff_len": 64, "val_size": 0.1}},
            {"id": "sft", "uses": "train", "needs": ["data"], "with": {"finetuning_type": "lora", "max_steps": 2}},
            {"id": "eval", "uses": "eval", "needs": ["sft"], "with": {"eval_dataset": "identity_eval"}},
            {"id": "export", "uses": "export", "needs": ["sft"], "with": {"export_size": 1}},
        ],
    }


def _plan(raw, **kwargs):
    return plan_pipeline(parse_pipeline(raw), **kwargs)


def _fingerprints(raw) -> dict[str, str]:
    return {step_id: step.fingerprint for step_id, step in _plan(raw).steps.items()}


def test_steps_get_their_inputs_and_their_folders(tmp_path):
    plan = _plan(_raw(tmp_path))
    data, sft, ev, export = (plan.steps[k] for k in ("data", "sft", "eval", "export"))
    root = tmp_path / "store" / "tiny"
    assert data.artifact == str(root / "steps" / "data" / data.fingerprint[:12])
    assert data.config["tokenized_path"] == data.artifact == data.outputs["dataset"]  # the artifact is the dataset
    # train: the preprocess step's data keys and dataset, its own folder, Ray Train storage in the pipeline
    assert sft.config["tokenized_path"] == data.outputs["dataset"]
    assert (sft.config["dataset"], sft.config["cutoff_len"], sft.config["val_size"]) == (["identity"], 64, 0.1)
    assert sft.config["output_dir"] == str(Path(sft.artifact) / "model")
    assert sft.config["ray_storage_path"] == str(root / "ray_train")
    assert sft.outputs["adapters"] == [str(Path(sft.artifact) / "model")]
    # eval / export: the trained model's location and the template it was trained with, not its data
    for consumer in (ev, export):
        assert consumer.config["model_name_or_path"] == "builtin:tiny-llama"
        assert consumer.config["adapter_name_or_path"] == [sft.config["output_dir"]]
        assert consumer.config["cutoff_len"] == 64 and consumer.config["template"] == "llama3"
        assert "dataset" not in consumer.config and "max_steps" not in consumer.config
    assert ev.config["save_dir"] == str(Path(ev.artifact) / "results")
    assert export.config["export_dir"] == str(Path(export.artifact) / "model")
    assert export.resources == {"CPU": 1.0} and sft.resources == {"CPU": 0.0}
    assert [step.id for step in plan.to_run] == ["data", "sft", "eval", "export"]


def test_a_changed_step_changes_its_own_and_its_descendants_fingerprints_only(tmp_path):
    raw = _raw(tmp_path)
    before = _fingerprints(raw)
    assert _fingerprints(copy.deepcopy(raw)) == before  # stable

    changed = copy.deepcopy(raw)
    changed["steps"][3]["with"]["export_size"] = 2
    after = _fingerprints(changed)
    assert [k for k in before if before[k] != after[k]] == ["export"]

    changed = copy.deepcopy(raw)
    changed["steps"][1]["with"]["learning_rate"] = 1e-3
    after = _fingerprints(changed)
    assert [k for k in before if before[k] != after[k]] == ["sft", "eval", "export"]

    changed = copy.deepcopy(raw)
    changed["defaults"]["template"] = "default"
    after = _fingerprints(changed)
    assert all(before[k] != after[k] for k in before)


def test_editing_a_data_file_invalidates_the_steps_that_read_it(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(DEMO_DATA_DIR, data_dir)
    raw = _raw(tmp_path)
    raw["defaults"]["dataset_dir"] = str(data_dir)
    before = _fingerprints(raw)
    rows = json.loads((data_dir / "identity.json").read_text())
    (data_dir / "identity.json").write_text(json.dumps(rows[:-1]))
    after = _fingerprints(raw)
    assert all(before[k] != after[k] for k in before)  # data, and everything downstream of it


def test_a_finished_artifact_with_the_same_fingerprint_is_reused_and_forcing_reruns_it(tmp_path):
    raw = _raw(tmp_path)
    plan = _plan(raw)
    data = plan.steps["data"]
    Path(data.artifact).mkdir(parents=True)
    (Path(data.artifact) / "manifest.json").write_text(json.dumps({"status": "complete", "fingerprint": "other"}))
    assert not _plan(raw).steps["data"].cached
    (Path(data.artifact) / "manifest.json").write_text(
        json.dumps({"status": "complete", "fingerprint": data.fingerprint})
    )
    again = _plan(raw)
    assert again.steps["data"].cached and [s.id for s in again.to_run] == ["sft", "eval", "export"]
    forced = _plan(raw, from_step="data")
    assert [s.id for s in forced.to_run] == ["data", "sft", "eval", "export"]
    with pytest.raises(ConfigError, match=r"--only eval: its inputs sft have no finished artifact"):
        _plan(raw, only_step="eval")
    only = _plan(raw, only_step="sft")
    assert [s.id for s in only.to_run] == ["sft"]


def test_a_preprocess_step_takes_the_stage_of_its_trainer(tmp_path):
    raw = _raw(tmp_path)
    raw["steps"][0]["with"]["dataset"] = "dpo_en_demo"
    raw["steps"][1]["with"]["stage"] = "dpo"
    raw["steps"] = raw["steps"][:2]
    plan = _plan(raw)
    assert plan.steps["data"].config["stage"] == "dpo"


def test_dpo_after_sft_continues_the_adapter_or_stacks_a_new_one(tmp_path):
    raw = _raw(tmp_path)
    raw["steps"][2:] = [
        {"id": "pairs", "uses": "preprocess", "with": {"dataset": "dpo_en_demo", "stage": "dpo", "cutoff_len": 64}},
        {"id": "dpo", "uses": "train", "needs": ["sft", "pairs"], "with": {"stage": "dpo", "finetuning_type": "lora"}},
        {"id": "export", "uses": "export", "needs": ["dpo"]},
    ]
    plan = _plan(raw)
    sft, dpo = plan.steps["sft"], plan.steps["dpo"]
    assert dpo.config["adapter_name_or_path"] == [sft.config["output_dir"]]  # trained further, as LF resumes it
    assert dpo.outputs["adapters"] == [dpo.config["output_dir"]]
    assert "max_steps" not in dpo.config  # the sft step's training keys stay with it
    raw["steps"][3]["with"]["create_new_adapter"] = True
    stacked = _plan(raw).steps["dpo"]
    assert stacked.outputs["adapters"] == [sft.config["output_dir"], stacked.config["output_dir"]]
    assert _plan(raw).steps["export"].config["adapter_name_or_path"] == stacked.outputs["adapters"]


def test_a_grpo_step_continues_one_model_step_and_only_reads_the_rm_steps_adapter(tmp_path):
    raw = _raw(tmp_path)
    grpo = {"stage": "grpo", "reward_model": "${steps.rm.outputs.model}", "reward_funcs": "numeric_match"}
    raw["steps"][2:] = [
        {"id": "pairs", "uses": "preprocess", "with": {"dataset": "dpo_en_demo", "stage": "rm", "cutoff_len": 64}},
        {"id": "rm", "uses": "train", "needs": ["pairs"], "with": {"stage": "rm", "finetuning_type": "lora"}},
        {"id": "prompts", "uses": "preprocess", "with": {"dataset": "arithmetic_prompts", "cutoff_len": 64}},
        {"id": "grpo", "uses": "train", "needs": ["sft", "rm", "prompts"], "with": grpo},
    ]
    plan = _plan(raw)
    sft, rm, step = plan.steps["sft"], plan.steps["rm"], plan.steps["grpo"]
    assert step.config["adapter_name_or_path"] == [sft.config["output_dir"]]  # the sft adapter, trained further
    assert step.config["reward_model"] == rm.outputs["model"] and step.config["dataset"] == ["arithmetic_prompts"]
    assert step.input_fingerprints == {name: plan.steps[name].fingerprint for name in ("sft", "rm", "prompts")}
    raw["steps"][3]["with"]["lora_rank"] = 4  # another reward model: another grpo artifact
    assert _plan(raw).steps["grpo"].fingerprint != step.fingerprint

    raw["steps"][5]["with"] = {"stage": "grpo", "reward_funcs": "numeric_match"}  # rm would hand its adapter too
    with pytest.raises(ConfigError, match=r"step `grpo` needs two model steps \(`sft` and `rm`\); keep one, or refer"):
        _plan(raw)


def test_on_object_storage_a_later_step_plans_on_artifacts_not_written_yet(tmp_path, s3_bucket):
    raw = _raw(tmp_path)
    raw["storage_path"] = storage.join(s3_bucket, "pipelines")
    raw["steps"][2:] = [
        {"id": "pairs", "uses": "preprocess", "with": {"dataset": "dpo_en_demo", "stage": "dpo", "cutoff_len": 64}},
        {"id": "dpo", "uses": "train", "needs": ["sft", "pairs"], "with": {"stage": "dpo", "finetuning_type": "lora"}},
    ]
    plan = _plan(raw)  # the sft adapter the dpo step starts from is not in the bucket yet: not a problem now
    adapter = plan.steps["sft"].outputs["model"]
    assert adapter.startswith(f"{s3_bucket}/pipelines/tiny/steps/sft/") and not storage.exists(adapter)
    assert plan.steps["dpo"].config["adapter_name_or_path"] == [adapter]
    assert {step.id for step in plan.to_run} == {"data", "sft", "pairs", "dpo"}


def test_a_missing_bucket_is_named_at_plan_time(tmp_path, s3_server):
    raw = _raw(tmp_path)
    raw["storage_path"] = "s3://lfr-no-such-bucket/pipelines"
    with pytest.raises(
        StorageError,
        match=r"storage_path `s3://lfr-no-such-bucket/pipelines/tiny`.*bucket `lfr-no-such-bucket` does not exist",
    ):
        _plan(raw)


def test_explicit_references_resolve_to_the_inputs_outputs(tmp_path):
    raw = _raw(tmp_path)
    raw["steps"][3] = {
        "id": "export",
        "uses": "export",
        "needs": ["sft"],
        "with": {"adapter_name_or_path": "${steps.sft.outputs.model}"},
    }
    plan = _plan(raw)
    assert plan.steps["export"].config["adapter_name_or_path"] == [plan.steps["sft"].outputs["model"]]
    raw["steps"][3]["with"]["adapter_name_or_path"] = "${steps.data.outputs.dataset}"
    with pytest.raises(ConfigError, match=r"add `data` to its `needs`"):
        _plan(raw)
    raw["steps"][3]["with"]["adapter_name_or_path"] = "${steps.sft.outputs.weights}"
    with pytest.raises(ConfigError, match=r"`sft` has no output `weights`; its outputs are adapters, base_model"):
        _plan(raw)


def test_a_whole_value_reference_to_the_adapter_chain_stays_a_list(tmp_path):
    """dpo after sft, against the SFT model: `ref_model` + `ref_model_adapters` from the sft step's outputs."""
    raw = _raw(tmp_path)
    refs = {"ref_model": "${steps.sft.outputs.base_model}", "ref_model_adapters": "${steps.sft.outputs.adapters}"}
    raw["steps"][3] = {"id": "dpo", "uses": "train", "needs": ["sft"], "with": {"stage": "dpo", **refs}}
    raw["steps"][3]["with"]["dataset"] = "dpo_en_demo"
    plan = _plan(raw)
    sft = plan.steps["sft"].outputs
    config = plan.steps["dpo"].config
    assert config["ref_model"] == sft["base_model"] == "builtin:tiny-llama"
    assert config["ref_model_adapters"] == sft["adapters"] == [sft["model"]]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw["steps"][1]["with"].update(output_dir="x"), r"step `sft` sets `output_dir`.*remove"),
        (
            lambda raw: raw["steps"][1]["with"].update(lerning_rate=1),
            r"unknown key `lerning_rate` in step `sft` `with`; did you mean `learning_rate`",
        ),
        (
            lambda raw: raw["steps"][1]["with"].update(cutoff_len=32),
            r"`sft` would tokenize its data differently from `data` \(cutoff_len differ",
        ),
        (lambda raw: raw["steps"][2]["with"].update(task="demo_mmlu", task_dir="nowhere"), r"no task.json in nowhere"),
        (lambda raw: raw["steps"][2]["with"].update(predict_with_generate=True, eval_dataset=None), r"eval_dataset"),
        (  # the eval split rule is one rule: no `val_size` upstream and no `eval_dataset` fails at plan time
            lambda raw: raw["steps"][0]["with"].pop("val_size") and raw["steps"][2]["with"].pop("eval_dataset"),
            r"step `eval`.*nothing to evaluate",
        ),
        (lambda raw: raw.update(storage_path="ftp://host/runs"), r"ftp://host/runs"),
    ],
)
def test_bad_step_configs_are_refused_before_anything_runs(tmp_path, edit, message):
    raw = _raw(tmp_path)
    edit(raw)
    with pytest.raises(LfRayError, match=message):  # a ConfigError, or a StorageError for the storage path
        _plan(raw)


def test_a_serve_step_takes_the_exported_model_and_is_deployed_every_run(tmp_path):
    raw = _raw(tmp_path)
    raw["steps"].append({"id": "api", "uses": "serve", "needs": ["export"], "with": {"api_port": 8123}})
    plan = _plan(raw)
    api, export = plan.steps["api"], plan.steps["export"]
    assert api.config["model_name_or_path"] == export.outputs["model"] and "adapter_name_or_path" not in api.config
    assert api.config["template"] == "llama3" and api.config["cutoff_len"] == 64
    Path(api.artifact).mkdir(parents=True)
    (Path(api.artifact) / "manifest.json").write_text(
        json.dumps({"status": "complete", "fingerprint": api.fingerprint})
    )
    assert not _plan(raw).steps["api"].cached
