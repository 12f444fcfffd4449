"""DeepSpeed config resolution, and real 2-process ZeRO-2 / ZeRO-3 steps on CPU (gloo) with no C++ JIT build."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from lf_ray.errors import ConfigError
from lf_ray.train.deepspeed import disable_deepspeed_shm_build, resolve_deepspeed_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "examples" / "deepspeed").glob("ds_z*_config.json"))
SHIPPED_NAMES = [p.name for p in SHIPPED]


def _leaves(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        return {k: v for key, sub in config.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): config}


def test_ships_llamafactory_five_configs():
    assert SHIPPED_NAMES == [
        "ds_z0_config.json",
        "ds_z2_config.json",
        "ds_z2_offload_config.json",
        "ds_z3_config.json",
        "ds_z3_offload_config.json",
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=SHIPPED_NAMES)
def test_resolve_shipped_config_on_cpu(path):
    raw = json.loads(path.read_text())
    cfg = resolve_deepspeed_config(path, on_cpu=True)

    assert cfg["fp16"]["enabled"] is False and cfg["bf16"]["enabled"] is False
    assert cfg["optimizer"] == {
        "type": "AdamW",
        "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto", "torch_adam": True},
    }
    zero = cfg["zero_optimization"]
    offloads = [o for o in ("offload_optimizer", "offload_param") if o in zero]
    assert ("offload" in path.name) == bool(offloads)
    for offload in offloads:
        assert zero[offload] == {"device": "cpu", "pin_memory": False}
    # the only values changed are the CPU ones; every other "auto" is left for transformers to fill
    raw_leaves, new_leaves = _leaves(raw), _leaves(cfg)
    changed = {key for key, value in raw_leaves.items() if new_leaves[key] != value}
    assert changed == {"fp16.enabled", "bf16.enabled"} | {f"zero_optimization.{o}.pin_memory" for o in offloads}
    assert {key for key, value in new_leaves.items() if value == "auto"} >= {
        key for key, value in raw_leaves.items() if value == "auto" and key not in changed
    }
    assert json.loads(path.read_text()) == raw  # the file is untouched


@pytest.mark.parametrize("path", SHIPPED, ids=SHIPPED_NAMES)
def test_resolve_shipped_config_off_cpu_is_the_file(path):
    assert resolve_deepspeed_config(path, on_cpu=False) == json.loads(path.read_text())


def test_relative_path_found_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve_deepspeed_config("examples/deepspeed/ds_z3_config.json", on_cpu=False)
    assert cfg["zero_optimization"]["stage"] == 3


def test_dict_input_is_copied_and_existing_adam_gets_torch_adam():
    given = {"optimizer": {"type": "Adam", "params": {"lr": 1e-4}}, "bf16": {"enabled": True}}
    cfg = resolve_deepspeed_config(given, on_cpu=True)
    assert cfg["optimizer"] == {"type": "Adam", "params": {"lr": 1e-4, "torch_adam": True}}
    assert cfg["bf16"] == {"enabled": False}
    assert given == {"optimizer": {"type": "Adam", "params": {"lr": 1e-4}}, "bf16": {"enabled": True}}


def test_missing_file_names_the_path():
    with pytest.raises(ConfigError, match=r"'nowhere/ds_z9_config\.json' not found .*examples/deepspeed"):
        resolve_deepspeed_config("nowhere/ds_z9_config.json", on_cpu=True)


def test_bad_json_names_the_path_and_position(tmp_path):
    bad = tmp_path / "ds.json"
    bad.write_text('{\n  "zero_optimization": {"stage": 2,}\n}\n')
    with pytest.raises(ConfigError, match=rf"{bad} is not valid JSON: .* line 2"):
        resolve_deepspeed_config(bad, on_cpu=True)


def test_json_that_is_not_an_object(tmp_path):
    bad = tmp_path / "ds.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="holds a list, not a JSON object"):
        resolve_deepspeed_config(str(bad), on_cpu=False)


@pytest.mark.parametrize(
    "given",
    [
        {"optimizer": {"type": "Lamb", "params": {}}},
        {"optimizer": {"type": "Adagrad"}, "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}},
        {"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}},
    ],
    ids=["lamb", "adagrad-offload", "nvme"],
)
def test_cpu_rejects_what_needs_a_cpp_op(given):
    with pytest.raises(ConfigError, match="the `deepspeed` dict"):
        resolve_deepspeed_config(given, on_cpu=True)


def test_shm_patch_is_idempotent():
    import sys

    assert disable_deepspeed_shm_build() is True
    assert disable_deepspeed_shm_build() is True
    assert sys.modules["deepspeed.comm.torch"].build_shm_op() is None


def _concrete_config(name: str, model, world_size: int) -> dict[str, Any]:
    """Resolve a shipped file and let transformers fill its "auto"s, as the Trainer does."""
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig, unset_hf_deepspeed_config

    cfg = resolve_deepspeed_config(ROOT / "examples" / "deepspeed" / name, on_cpu=True)
    args = TrainingArguments(
        output_dir="unused", per_device_train_batch_size=2, learning_rate=1e-3, use_cpu=True, report_to="none"
    )
    hf_config = HfTrainerDeepSpeedConfig(cfg)
    try:
        hf_config.trainer_config_process(args)
        hf_config.trainer_config_finalize(args, model, num_training_steps=2)
    finally:
        unset_hf_deepspeed_config()  # or every later model load in this process would think ZeRO-3 is on
    resolved = hf_config.config
    resolved["train_batch_size"] = 2 * world_size  # transformers used this process's world size of 1
    return resolved


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_transformers_fills_every_auto(name, tiny_llama_path):
    from lf_ray.model.loader import load_causal_lm

    resolved = _concrete_config(name, load_causal_lm(tiny_llama_path), world_size=1)
    assert "auto" not in _leaves(resolved).values()
    assert resolved["optimizer"]["params"]["lr"] == 1e-3
    assert resolved["optimizer"]["params"]["torch_adam"] is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _zero_worker(rank: int, world_size: int, port: int, model_path: str, configs: dict, out_dir: str) -> None:
    """One rank: refuse any JIT build, skip the shm op, run 2 optimizer steps per config."""
    env = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": world_size, "LOCAL_WORLD_SIZE": world_size}
    os.environ.update({k: str(v) for k, v in env.items()}, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import deepspeed
    import torch
    from deepspeed.ops.op_builder.builder import OpBuilder

    from lf_ray.model.loader import load_causal_lm

    builds: list[str] = []

    def refuse_build(self, verbose=True):
        builds.append(self.NAME)
        raise RuntimeError(f"DeepSpeed tried to JIT-build the {self.NAME} op")

    OpBuilder.jit_load = refuse_build
    assert disable_deepspeed_shm_build()
    deepspeed.init_distributed(dist_backend="gloo")
    results = {}
    for name, config in configs.items():
        start = time.perf_counter()
        torch.manual_seed(0)
        model = load_causal_lm(model_path)
        engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
        # each rank its own batch, the same one twice: the second loss shows the first update landed
        input_ids = torch.randint(3, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(rank))
        losses = []
        for _ in range(2):
            loss = engine(input_ids=input_ids, labels=input_ids).loss
            engine.backward(loss)
            engine.step()
            losses.append(loss.item())
        results[name] = {
            "losses": losses,
            "steps": engine.global_steps,
            "optimizer": type(engine.basic_optimizer).__name__,
            "seconds": time.perf_counter() - start,
        }
        engine.destroy()
    results["builds"] = builds
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(results))


def test_zero2_and_zero3_two_processes_on_cpu_without_jit(tmp_path, tiny_llama_path, monkeypatch):
    import torch.multiprocessing as mp

    from lf_ray.model.loader import load_causal_lm

    model = load_causal_lm(tiny_llama_path)
    names = ["ds_z2_config.json", "ds_z3_config.json", "ds_z2_offload_config.json", "ds_z3_offload_config.json"]
    configs = {name: _concrete_config(name, model, world_size=2) for name in names}
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch_extensions"))

    start = time.perf_counter()
    mp.start_processes(
        _zero_worker,
        args=(2, _free_port(), tiny_llama_path, configs, str(tmp_path)),
        nprocs=2,
        start_method="spawn",
    )
    seconds = time.perf_counter() - start

    for rank in range(2):
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert results.pop("builds") == []
        for name, result in results.items():
            assert result["steps"] == 2, name
            assert result["optimizer"] == "AdamW", name  # torch.optim.AdamW: neither FusedAdam nor cpu_adam
            first, second = result["losses"]
            assert math.isfinite(first) and math.isfinite(second) and second < first, (name, result["losses"])
    assert not (tmp_path / "torch_extensions").exists()
    per_config = {name: round(result["seconds"], 1) for name, result in results.items()}  # rank 1's
    # No JIT build is asserted above (`builds == []`); the time is printed, not asserted (load makes it vary).
    print(f"\n2 ranks x {len(names)} ZeRO configs: {seconds:.1f} s wall (spawn included); per config {per_config}")
