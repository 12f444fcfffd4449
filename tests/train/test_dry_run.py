"""`lf-ray train CONFIG --dry-run`: the plan, then every check that needs no training, all problems in one message."""

from __future__ import annotations

import sys

import pytest
import yaml

from lf_ray.cli import main

TINY_LORA = {
    "model_name_or_path": "builtin:tiny-llama",
    "template": "llama3",
    "dataset_dir": "builtin",
    "dataset": "identity",
    "finetuning_type": "lora",
}


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    """No RAY_ADDRESS: the dry run has no cluster to ask and must not start one (the test session's own Ray, when
    an earlier test started it, is the only one allowed)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def running() -> bool:
        ray = sys.modules.get("ray")
        return ray is not None and ray.is_initialized()

    before = running()
    yield
    assert running() == before


def _dry_run(tmp_path, **keys) -> int:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**TINY_LORA, "output_dir": str(tmp_path / "out"), **keys}))
    return main(["train", str(path), "--dry-run"])


def test_a_good_config_passes_every_check_and_writes_nothing(tmp_path, capsys):
    assert _dry_run(tmp_path) == 0
    out = capsys.readouterr().out
    assert "# plan: train (dry run)" in out
    assert out.rstrip().endswith("# checks passed: stage, output_dir, lora settings against the model's modules")
    assert not (tmp_path / "out").exists()


def test_every_problem_is_named_at_once_with_exit_status_2(tmp_path, capsys):
    status = _dry_run(
        tmp_path,
        deepspeed=str(tmp_path / "ds_z9.json"),
        lora_target="nothing_proj",
        resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-7"),
    )
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lf-ray train: error: 3 problems in {tmp_path / 'cfg.yaml'} would stop training:\n  - ")
    assert f"resume_from_checkpoint `{tmp_path / 'out' / 'checkpoint-7'}` is not a readable checkpoint" in err
    assert f"deepspeed config '{tmp_path / 'ds_z9.json'}' not found" in err
    assert "`lora_target` entry nothing_proj matches no Linear or Embedding layer of LlamaForCausalLM" in err
    assert "# checks passed" not in capsys.readouterr().out


def test_malformed_deepspeed_json_is_reported_with_its_line_and_column(tmp_path, capsys):
    (tmp_path / "ds.json").write_text('{\n  "zero_optimization": {"stage": 2,},\n}\n')
    assert _dry_run(tmp_path, deepspeed=str(tmp_path / "ds.json")) == 2
    assert "is not valid JSON: Expecting property name enclosed in double quotes at line 2" in capsys.readouterr().err


def test_gpus_asked_of_a_gpu_less_cluster_are_refused(tmp_path, capsys, monkeypatch):
    from lf_ray.train import launcher

    monkeypatch.setattr(launcher, "reachable_cluster_gpus", lambda cfg: 0.0)  # as read from a CPU-only cluster
    assert _dry_run(tmp_path, resources_per_worker={"GPU": 1}) == 2
    assert "resources_per_worker asks for GPUs ({'GPU': 1.0}) but the Ray cluster has none" in capsys.readouterr().err


def test_out_of_range_numbers_are_refused_when_the_config_is_read(tmp_path, capsys):
    assert _dry_run(tmp_path, lora_rank=-1, learning_rate=0) == 2
    err = capsys.readouterr().err
    assert "`lora_rank` is -1; a LoRA rank is a whole number of at least 1" in err
    assert "`learning_rate` is 0; use a positive step size" in err


def test_qlora_is_checked_before_training(tmp_path, capsys, monkeypatch):
    import importlib.util

    assert _dry_run(tmp_path, quantization_bit=4) == 0
    assert _dry_run(tmp_path, quantization_bit=4, deepspeed="examples/deepspeed/ds_z3_config.json") == 2
    assert "`quantization_bit: 4` with DeepSpeed ZeRO-3" in capsys.readouterr().err

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a)
    )
    assert _dry_run(tmp_path, quantization_bit=4) == 2
    assert "needs bitsandbytes, which is not installed: pip install 'lf-ray[qlora]'" in capsys.readouterr().err
