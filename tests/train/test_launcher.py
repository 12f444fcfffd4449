"""How the train step configures Ray Train: scaling, storage, checkpoints, failures (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_ray.config import prepare_config
from lf_ray.errors import ConfigError
from lf_ray.train.launcher import build_run_config, build_scaling_config, check_trainable, default_run_name


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


def test_relative_storage_becomes_absolute_and_uris_pass_through():
    assert Path(build_run_config(_cfg("ray_storage_path=./saves")).storage_path).is_absolute()
    assert build_run_config(_cfg("ray_storage_path=s3://bucket/runs")).storage_path == "s3://bucket/runs"


def test_ray_run_name_wins_and_default_names_follow_stage_and_output():
    assert build_run_config(_cfg("ray_run_name=my_run")).name == "my_run"
    assert default_run_name(_cfg("stage=dpo")) != default_run_name(_cfg("stage=sft"))
    assert default_run_name(_cfg("output_dir=a/b")) != default_run_name(_cfg("output_dir=a/c"))


def test_untrainable_stage_and_missing_output_dir():
    with pytest.raises(ConfigError, match="stage `ppo` cannot be trained"):
        check_trainable(_cfg("stage=ppo", "reward_model=x", "do_train=true"))
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
