"""The torch profiler and module timings on a real training run: the trace files each rank writes, the ops and
steps they hold, and the timing table `profile_modules` prints (CPU, builtin tiny-llama, LoRA, no Ray)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest

from lf_ray.errors import TrainError
from lf_ray.model.loader import load_causal_lm
from lf_ray.tracking.profiler import ModuleProfilerCallback, TorchProfilerCallback
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.stages import StageContext, build_trainer
from tests.train.stage_runs import ROWS, lora, stage_config, train

MODULES = "*.layers.0.self_attn,*.layers.1.mlp"


def _traces(folder: Path) -> list[list[dict]]:
    """The events of each trace file in `folder`, in the order they were written (the name holds the time)."""
    files = sorted(folder.glob("rank_0.*.pt.trace.json"), key=lambda f: int(f.name.split(".")[1]))
    return [json.loads(f.read_text())["traceEvents"] for f in files]


def _steps(events: list[dict]) -> list[str]:
    return sorted(e["name"] for e in events if e.get("name", "").startswith("ProfilerStep#"))


def _names(events: list[dict]) -> set[str]:
    return {e.get("name", "") for e in events}


def test_the_profiler_records_only_the_active_steps_of_each_cycle(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("sft")
    schedule = ["profiler_wait_steps=1", "profiler_warmup_steps=1", "profiler_active_steps=2", "profiler_repeat=2"]
    options = ["profiler_record_shapes=false", "profiler_profile_memory=false", "profiler_with_stack=false"]
    cfg = stage_config("sft", "enable_torch_profiler=true", *schedule, *options, "max_steps=9")
    trainer = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path)

    assert [type(c) for c in trainer.callback_handler.callbacks].count(TorchProfilerCallback) == 1
    traces = _traces(tmp_path / "profiler" / "rank_0")  # output_dir/profiler/rank_<N>, rank in the name too
    # cycle = wait 1, warmup 1, active 2 → steps 2-3 and 6-7 (counted from 0); step 8 is past the 2 repeats
    assert [_steps(events) for events in traces] == [
        ["ProfilerStep#2", "ProfilerStep#3"],
        ["ProfilerStep#6", "ProfilerStep#7"],
    ]
    for events in traces:
        assert {"aten::mm", "aten::linear"} <= _names(events)  # the LoRA projections' matmuls
        assert "[memory]" not in _names(events)  # profile_memory off
        assert not any("Input Dims" in e.get("args", {}) for e in events)  # record_shapes off
        assert not any(e.get("cat") == "python_function" for e in events)  # with_stack off


def test_profile_modules_labels_and_times_the_matched_modules(encoded, tiny_llama_path, tmp_path, capsys):
    tokenizer, rows = encoded("sft")
    options = ["profiler_record_shapes=true", "profiler_profile_memory=true", "profiler_with_stack=true"]
    traces = tmp_path / "traces"
    cfg = stage_config(
        "sft",
        "enable_torch_profiler=true",
        f"profiler_output_dir={traces}",
        *options,
        f"profile_modules={MODULES}",
        "max_steps=3",
    )
    train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path / "out")

    assert not (tmp_path / "out" / "profiler").exists()  # profiler_output_dir replaces output_dir/profiler
    (events,) = _traces(traces / "rank_0")
    assert _steps(events) == ["ProfilerStep#2"]  # LLaMA-Factory's default schedule: wait 1, warmup 1, active 1
    attention, mlp = "base_model.model.model.layers.0.self_attn", "base_model.model.model.layers.1.mlp"
    labels = {f"{attention}.forward", f"{attention}.backward", f"{mlp}.forward", f"{mlp}.backward"}
    assert labels <= _names(events)  # each timed pass is a labelled range of the trace
    assert not any(".layers.1.self_attn." in name for name in _names(events))  # only the matched modules
    assert "[memory]" in _names(events)
    assert any("Input Dims" in e.get("args", {}) for e in events)
    assert any(e.get("cat") == "python_function" for e in events)

    tables = capsys.readouterr().out.split("[ModuleProfiler] Timing (ms):")[1:]
    assert len(tables) == 3  # one per logging step (logging_steps=1)
    timed = dict(re.findall(r"^  (\S+): fwd=([\d.]+)", tables[-1], re.M))
    assert set(timed) == {attention, mlp} and all(float(ms) > 0 for ms in timed.values())
    (mlp_backward,) = re.findall(rf"^  {re.escape(mlp)}: fwd=[\d.]+, bwd=([\d.]+)", tables[-1], re.M)
    assert float(mlp_backward) > 0


def test_profile_modules_works_without_the_torch_profiler_and_refuses_a_pattern_that_matches_nothing(
    encoded, tiny_llama_path, tmp_path, capsys
):
    tokenizer, rows = encoded("sft")
    cfg = stage_config("sft", f"profile_modules={MODULES}", "max_steps=2")
    trainer = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:ROWS], tmp_path)
    (timer,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, ModuleProfilerCallback)]
    assert timer.patterns == ["*.layers.0.self_attn", "*.layers.1.mlp"] and not timer.label_in_trace
    assert not any(isinstance(c, TorchProfilerCallback) for c in trainer.callback_handler.callbacks)
    assert capsys.readouterr().out.count("[ModuleProfiler] Timing (ms):") == 2
    assert not (tmp_path / "profiler").exists()
    assert timer._handles == []  # the hooks are gone after training

    cfg = stage_config("sft", "profile_modules=*.layers.0.mlp,*.layers.9.attn", "max_steps=1")
    model = lora(load_causal_lm(tiny_llama_path))
    args = build_training_arguments(cfg, output_dir=str(tmp_path / "none"))
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, datasets.Dataset.from_list(rows[:ROWS])))
    with pytest.raises(TrainError, match=r"`profile_modules`: `\*\.layers\.9\.attn` matches no module of the model"):
        trainer.train()
