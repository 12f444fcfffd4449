"""How the train step configures Ray Train: scaling, storage, checkpoints, failures (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.train.launcher import (
    build_run_config,
    build_scaling_config,
    check_trainable,
    default_run_name,
    storage_path,
)


def _cfg(*overrides: str):
    base = ["model_name_or_path=builtin:tiny-llama", "dataset_dir=builtin", "dataset=identity", "output_dir=out/sft"]
    return prepare_config(None, [*base, *overrides])


def test_cpu_cluster_gets_one_cpu_per_worker():
    scaling = build_scaling_config(_cfg("ray_num_workers=2").ray, cluster_gpus=0)
    assert (scaling.num_workers, scaling.use_gpu) == (2, False)
    assert scaling.resources_per_worker == {"CPU": 1.0}
    assert scaling.placement_strategy == "PACK"


def test_gpu_cluster_gets_one_gpu_per_worker_by_default():
    scaling = build_scaling_config(_cfg("ray_num_workers=4").ray, cluster_gpus=8)
    assert scaling.use_gpu and scaling.resources_per_worker == {"GPU": 1.0}


def test_explicit_resources_and_placement_are_kept():
    cfg = _cfg('resources_per_worker={"CPU": 0.5}', "placement_strategy=SPREAD", "ray_num_workers=2")
    scaling = build_scaling_config(cfg.ray, cluster_gpus=0)
    assert scaling.resources_per_worker == {"CPU": 0.5} and scaling.placement_strategy == "SPREAD"


def test_gpus_asked_on_a_gpu_less_cluster_is_a_clear_error():
    cfg = _cfg('resources_per_worker={"GPU": 1}')
    with pytest.raises(ConfigError, match=r"asks for GPUs.*has none.*resources_per_worker: \{CPU: 1\}"):
        build_scaling_config(cfg.ray, cluster_gpus=0)


def test_run_config_keeps_checkpoints_and_retries(tmp_path):
    cfg = _cfg(f"ray_storage_path={tmp_path}", "save_total_limit=2", "max_failures=3")
    run = build_run_config(cfg)
    assert run.storage_path == str(tmp_path.resolve())
    assert run.checkpoint_config.num_to_keep == 2
    assert run.failure_config.max_failures == 3
    assert run.name == default_run_name(cfg) == default_run_name(_cfg(f"ray_storage_path={tmp_path}"))


def test_relative_storage_becomes_absolute_and_uris_get_lf_rays_filesystem():
    import pyarrow.fs

    local = build_run_config(_cfg("ray_storage_path=./saves"))
    assert Path(local.storage_path).is_absolute() and local.storage_filesystem is None
    remote = build_run_config(_cfg("ray_storage_path=s3://bucket/runs"))
    assert remote.storage_path == "bucket/runs" and isinstance(remote.storage_filesystem, pyarrow.fs.S3FileSystem)


def test_ray_run_name_wins_and_default_names_follow_stage_and_output():
    assert build_run_config(_cfg("ray_run_name=my_run")).name == "my_run"
    assert default_run_name(_cfg("stage=dpo")) != default_run_name(_cfg("stage=sft"))
    assert default_run_name(_cfg("output_dir=a/b")) != default_run_name(_cfg("output_dir=a/c"))


def test_missing_output_dir():
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "dataset_dir=builtin", "dataset=identity"])
    with pytest.raises(ConfigError, match="needs `output_dir`"):
        check_trainable(cfg)


def test_driver_prints_one_progress_line_per_logged_step(tmp_path, capsys):
    import json

    from lf_ray.train.launcher import _progress

    entries = [
        {"current_steps": step, "total_steps": 4, "loss": 2.0 / step, "lr": 1e-3, "epoch": step / 4,
         "percentage": step * 25.0, "elapsed_time": f"0:00:0{step}", "remaining_time": f"0:00:0{4 - step}"}
        for step in (1, 2)
    ]  # fmt: skip
    (tmp_path / "trainer_log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    with _progress(tmp_path, enabled=True):
        pass
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[train]")]
    assert len(lines) == 2
    assert "step 1/4" in lines[0] and "loss 2.0000" in lines[0] and "step 2/4" in lines[1]


def test_llama_factory_s3_filesystem_key_gives_ray_a_writable_bucket_path(s3_server, s3_bucket):
    """`ray_storage_path: s3://b/ckpt` + `ray_storage_filesystem: s3` used to crash in `from_uri("s3")`."""
    import boto3
    import pyarrow.fs

    cfg = _cfg(f"ray_storage_path={s3_bucket}/ckpt", "ray_storage_filesystem=s3", "ray_run_name=run1")
    bucket = s3_bucket.removeprefix("s3://")
    run = build_run_config(cfg)
    assert run.storage_path == f"{bucket}/ckpt" and isinstance(run.storage_filesystem, pyarrow.fs.S3FileSystem)
    assert storage_path(cfg) == f"{s3_bucket}/ckpt"  # one form for Ray Tune, the dry run and overwrite_output_dir
    bare = _cfg(
        f"ray_storage_path={bucket}/ckpt", "ray_storage_filesystem=s3"
    )  # the path as LF's S3FileSystem takes it
    assert storage_path(bare) == f"{s3_bucket}/ckpt" and build_run_config(bare).storage_path == f"{bucket}/ckpt"
    context = run.storage_context  # Ray's own StorageContext writes its validation marker through our filesystem
    assert (context.storage_fs_path, context.experiment_fs_path) == (f"{bucket}/ckpt", f"{bucket}/ckpt/run1")
    with run.storage_filesystem.open_output_stream(f"{context.experiment_fs_path}/checkpoint_0/model.bin") as out:
        out.write(b"weights")
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket=bucket)["Contents"]]
    assert "ckpt/run1/checkpoint_0/model.bin" in keys
    assert any(key.startswith("ckpt/run1/.validate_storage_marker") for key in keys), keys
    with pytest.raises(ConfigError, match=r"`gs://b/x` does not match ray_storage_filesystem `s3`"):
        build_run_config(_cfg("ray_storage_path=gs://b/x", "ray_storage_filesystem=s3"))


def _bad_deepspeed(tmp_path: Path) -> Path:
    path = tmp_path / "ds.json"
    path.write_text('{"zero_optimization": {"stage": 2},\n  "train_batch_size": auto}\n')
    return path


def test_every_problem_that_needs_no_training_is_listed_at_once(tmp_path, monkeypatch):
    from lf_ray.train import launcher

    monkeypatch.setattr(launcher, "reachable_cluster_gpus", lambda cfg: 0.0)  # a CPU-only cluster, no Ray started
    cfg = _cfg(
        f"resume_from_checkpoint={tmp_path / 'checkpoint-9'}",
        f"deepspeed={_bad_deepspeed(tmp_path)}",
        "lora_target=nothing_proj",
        'resources_per_worker={"GPU": 1}',
    )
    problems = launcher.training_problems(cfg)
    assert len(problems) == 4, problems
    resume, deepspeed, gpus, targets = problems
    assert resume.startswith(f"resume_from_checkpoint `{tmp_path / 'checkpoint-9'}` is not a readable checkpoint")
    assert "is not valid JSON: Expecting value at line 2, column 23" in deepspeed
    assert gpus.startswith("resources_per_worker asks for GPUs ({'GPU': 1.0}) but the Ray cluster has none")
    assert "`lora_target` entry nothing_proj matches no Linear or Embedding layer" in targets
    with pytest.raises(ConfigError) as err:
        check_trainable(cfg)
    assert str(err.value).splitlines() == ["4 problems in the config would stop training:"] + [
        f"  - {problem}" for problem in problems
    ]


def test_deepspeed_file_is_found_parsed_and_checked_for_cpu_when_the_workers_use_cpus(tmp_path, monkeypatch):
    from lf_ray.train import launcher

    monkeypatch.setattr(launcher, "reachable_cluster_gpus", lambda cfg: None)
    missing = launcher.training_problems(_cfg(f"deepspeed={tmp_path / 'none.json'}"))
    assert len(missing) == 1 and "not found" in missing[0] and "set `deepspeed` to an existing JSON file" in missing[0]
    (tmp_path / "list.json").write_text("[1, 2]")
    (listed,) = launcher.training_problems(_cfg(f"deepspeed={tmp_path / 'list.json'}"))
    assert "holds a list, not a JSON object" in listed
    nvme = tmp_path / "nvme.json"
    nvme.write_text('{"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}}')
    assert launcher.training_problems(_cfg(f"deepspeed={nvme}")) == []  # the cluster may have GPUs
    (on_cpu,) = launcher.training_problems(_cfg(f"deepspeed={nvme}", 'resources_per_worker={"CPU": 1}'))
    assert "offload_param.device is 'nvme'" in on_cpu
    assert launcher.training_problems(_cfg("deepspeed=examples/deepspeed/ds_z2_config.json")) == []


def test_a_relative_profiler_output_dir_reaches_the_workers_absolute(tmp_path, monkeypatch):
    """Ray Train runs the workers in its own working directory: the driver resolves the traces' folder."""
    from lf_ray.train.launcher import build_loop_config

    monkeypatch.chdir(tmp_path)
    cfg = _cfg("enable_torch_profiler=true", "profiler_output_dir=traces")
    loop_config = build_loop_config(cfg, str(tmp_path / "out"), str(tmp_path / "data"), use_gpu=False)
    assert loop_config["config"].get("profiler_output_dir") == str(tmp_path / "traces")
    assert cfg.get("profiler_output_dir") == "traces"  # the caller's config is left as it was
    assert build_loop_config(_cfg(), "out", "data", use_gpu=False)["config"].get("profiler_output_dir") is None


def test_relative_tensorboard_and_swanlab_folders_reach_the_workers_absolute(tmp_path, monkeypatch):
    from lf_ray.train.launcher import build_loop_config

    monkeypatch.chdir(tmp_path)
    cfg = _cfg("logging_dir=tb", "use_swanlab=true", "swanlab_logdir=swanlog")
    resolved = build_loop_config(cfg, str(tmp_path / "out"), str(tmp_path / "data"), use_gpu=False)["config"]
    assert resolved.get("logging_dir") == str(tmp_path / "tb")
    assert resolved.finetuning.swanlab_logdir == str(tmp_path / "swanlog")
    assert (cfg.get("logging_dir"), cfg.finetuning.swanlab_logdir) == ("tb", "swanlog")  # the caller's is unchanged


def test_the_model_check_waits_for_an_adapter_an_earlier_step_will_write(tmp_path, monkeypatch):
    from lf_ray.train import launcher

    monkeypatch.setattr(launcher, "reachable_cluster_gpus", lambda cfg: None)
    cfg = _cfg(f"adapter_name_or_path={tmp_path / 'sft' / 'adapter'}")
    assert launcher.training_problems(cfg) == []  # a pipeline plan: the sft step has not run yet
    (problem,) = launcher.training_problems(cfg, require_inputs=True)
    assert problem.startswith(f"`adapter_name_or_path` entry '{tmp_path / 'sft' / 'adapter'}' does not exist")


def test_the_cluster_is_asked_only_when_one_is_named_and_never_started(monkeypatch):
    import ray

    from lf_ray.train import launcher

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # this process is connected to no cluster
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail(f"ray.init({kwargs}) with no cluster named"))
    assert launcher.reachable_cluster_gpus(_cfg()) is None
    assert launcher.reachable_cluster_gpus(_cfg('ray_init_kwargs={"address": "local"}')) is None

    calls = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 8.0})
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert launcher.reachable_cluster_gpus(_cfg()) == 8.0
    assert calls[0]["address"] == "ray://head:10001" and calls[1] == "shutdown"

    def refuse(**kwargs):
        raise ConnectionError("Could not find any running Ray instance")

    monkeypatch.setattr(ray, "init", refuse)
    cfg = _cfg('ray_init_kwargs={"address": "10.0.0.1:6379"}')
    with pytest.raises(ConfigError, match=r"Ray cluster at `10.0.0.1:6379` .* does not answer: Could not find"):
        launcher.reachable_cluster_gpus(cfg)
    assert "does not answer" in launcher.training_problems(cfg)[0]


def test_a_run_checks_everything_before_it_tokenizes(tmp_path, monkeypatch):
    import lf_ray.data.preprocess
    from lf_ray.train import launcher

    monkeypatch.setattr(launcher, "reachable_cluster_gpus", lambda cfg: None)
    monkeypatch.setattr(lf_ray.data.preprocess, "run_preprocess", lambda cfg: pytest.fail("tokenized a bad config"))
    cfg = _cfg(f"deepspeed={tmp_path / 'none.json'}", "lora_target=nothing_proj")
    with pytest.raises(ConfigError, match=r"(?s)2 problems.*deepspeed config .* not found.*nothing_proj"):
        launcher.run_training(cfg, show_progress=False)


def test_a_store_lost_on_any_rank_is_a_storage_error_and_other_failures_stay_train_errors(monkeypatch):
    """What Ray Train raised when the S3 endpoint went away (CI saw rank 0 fail only on the checkpoint rank 1 could
    not fetch), against failures that merely time out or break."""
    from ray.train import ControllerError, WorkerGroupError

    from lf_ray.errors import StorageError, TrainError
    from lf_ray.train.launcher import worker_errors_as_lf_ray_errors

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    lost = OSError(
        "When getting information for key 'ray/run/checkpoint_1' in bucket 'b': AWS Error NETWORK_CONNECTION during "
        "HeadObject operation: curlCode: 7, Could not connect to server"
    )
    in_a_traceback = RuntimeError(f"Traceback (most recent call last):\n  File ...\n{lost}\n")
    after_the_store = ValueError("Can't find a valid checkpoint at /tmp/checkpoint_tmp_1/checkpoint")
    storage_lost = [WorkerGroupError("", {0: after_the_store, 1: in_a_traceback}), ControllerError(lost)]
    for failure in storage_lost:
        with pytest.raises(StorageError) as err, worker_errors_as_lf_ray_errors():
            raise failure
        assert "storage became unreachable while Ray Train used it: http://127.0.0.1:9 (When getting information" in (
            str(err.value)
        )
        assert "run the same command again: it resumes from the latest committed checkpoint" in str(err.value)
    timed_out = RuntimeError("Gloo connectFullMesh failed: Connect timed out")
    for failure, where in [
        (WorkerGroupError("", {0: after_the_store, 1: timed_out}), r"worker\(s\) \[0, 1\]: Can't find a valid"),
        (ControllerError(RuntimeError("boom")), "Ray Train's controller: boom"),
    ]:
        with pytest.raises(TrainError, match=f"training failed on {where}"), worker_errors_as_lf_ray_errors():
            raise failure
