"""LLaMA-Factory's profiling keys: torch profiler traces (`enable_torch_profiler`) and module timings
(`profile_modules`), as trainer callbacks every stage adds (`train.stages.base.trainer_callbacks`).

The torch profiler follows its schedule (`profiler_wait_steps`, `_warmup_steps`, `_active_steps`, `_repeat`) and
writes one Chrome / TensorBoard trace per cycle and rank: `<profiler_output_dir or output_dir/profiler>/rank_<N>/
rank_<N>.<ns>.pt.trace.json`, so the workers of a Ray Train group never write the same file.

`profile_modules` (comma-separated fnmatch patterns, e.g. `*.layers.0.self_attn,*.layers.0.mlp`) times the
forward and backward pass of each module it matches: CUDA events on a GPU as LLaMA-Factory does, the wall clock
on the CPU (where LLaMA-Factory times nothing). At each logging step the world's main process prints the mean
per call in milliseconds. With the torch profiler on, each timed pass is also a labelled range in the trace
(`<module>.forward`, `<module>.backward`). As in LLaMA-Factory, the backward pass is timed with full backward
hooks, so a module whose inputs need no gradient (the first layer under LoRA) shows a backward time near zero.
"""

from __future__ import annotations

import fnmatch
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from lf_ray.errors import TrainError

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig

PROFILER_DIR = "profiler"
"""The traces' folder under `output_dir` when `profiler_output_dir` is not set (LLaMA-Factory's default)."""


@dataclass(frozen=True)
class ProfilerSettings:
    """The torch profiler keys of a config, as `torch.profiler.profile` takes them."""

    output_dir: str | None
    wait: int
    warmup: int
    active: int
    repeat: int
    record_shapes: bool
    profile_memory: bool
    with_stack: bool

    @classmethod
    def from_config(cls, cfg: LfRayConfig) -> ProfilerSettings:
        return cls(
            output_dir=cfg.get("profiler_output_dir"),
            wait=cfg.get("profiler_wait_steps"),
            warmup=cfg.get("profiler_warmup_steps"),
            active=cfg.get("profiler_active_steps"),
            repeat=cfg.get("profiler_repeat"),
            record_shapes=cfg.get("profiler_record_shapes"),
            profile_memory=cfg.get("profiler_profile_memory"),
            with_stack=cfg.get("profiler_with_stack"),
        )


def profiler_callbacks(cfg: LfRayConfig) -> list[TrainerCallback]:
    """The torch profiler when `enable_torch_profiler` is on; module timings when `profile_modules` names any."""
    callbacks: list[TrainerCallback] = []
    tracing = bool(cfg.get("enable_torch_profiler"))
    if tracing:
        callbacks.append(TorchProfilerCallback(ProfilerSettings.from_config(cfg)))
    if cfg.get("profile_modules"):
        patterns = [pattern.strip() for pattern in cfg.get("profile_modules").split(",") if pattern.strip()]
        callbacks.append(ModuleProfilerCallback(patterns, label_in_trace=tracing))
    return callbacks


def trace_dir(settings: ProfilerSettings, output_dir: str, rank: int) -> Path:
    """`<profiler_output_dir or output_dir/profiler>/rank_<rank>`: one folder per rank, as LLaMA-Factory."""
    return Path(settings.output_dir or Path(output_dir) / PROFILER_DIR) / f"rank_{rank}"


class TorchProfilerCallback(TrainerCallback):
    """Runs `torch.profiler.profile` over training: started at train begin, stepped at each optimizer step's end,
    stopped at train end. Each finished cycle of the schedule writes its trace (see the module's docstring)."""

    def __init__(self, settings: ProfilerSettings) -> None:
        self.settings = settings
        self._profiler: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        self._stop()
        rank = args.process_index
        folder = trace_dir(self.settings, args.output_dir, rank)
        folder.mkdir(parents=True, exist_ok=True)
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        s = self.settings
        self._profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=s.wait, warmup=s.warmup, active=s.active, repeat=s.repeat),
            on_trace_ready=torch.profiler.tensorboard_trace_handler(str(folder), worker_name=f"rank_{rank}"),
            record_shapes=s.record_shapes,
            profile_memory=s.profile_memory,
            with_stack=s.with_stack,
        )
        self._profiler.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._profiler is not None:
            self._profiler.step()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._stop()

    def _stop(self) -> None:
        """Stop the profiler; a cycle still recording writes its trace."""
        if self._profiler is not None:
            self._profiler.stop()
            self._profiler = None


class ModuleProfilerCallback(TrainerCallback):
    """Times the forward and backward pass of the modules whose names match `patterns` (see the module's
    docstring), with hooks registered at train begin and removed at train end."""

    def __init__(self, patterns: list[str], *, label_in_trace: bool = False) -> None:
        self.patterns = patterns
        self.label_in_trace = label_in_trace
        self._cuda = False
        self._handles: list[Any] = []
        self._open: dict[tuple[str, str], tuple[Any, Any]] = {}  # (module, pass) → (start mark, trace range)
        self._closed: list[tuple[str, str, Any, Any]] = []  # (module, pass, start mark, end mark)
        self._times: dict[tuple[str, str], list[float]] = defaultdict(list)  # milliseconds per call

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        names = [name for name, _ in model.named_modules() if name]
        unmatched = [pattern for pattern in self.patterns if not fnmatch.filter(names, pattern)]
        if unmatched or not self.patterns:
            raise TrainError(
                f"`profile_modules`: {', '.join(f'`{p}`' for p in unmatched) or 'no pattern'} matches no module of "
                f"the model, whose modules are named like {names[:3]} ... {names[-2:]}; use comma-separated fnmatch "
                "patterns such as `*.layers.0.self_attn,*.layers.0.mlp`"
            )
        matched = [name for name in names if any(fnmatch.fnmatch(name, pattern) for pattern in self.patterns)]
        self._cuda = args.device.type == "cuda"
        modules = dict(model.named_modules())
        for name in matched:
            module = modules[name]
            self._handles += [
                module.register_forward_pre_hook(self._opener(name, "forward")),
                module.register_forward_hook(self._closer(name, "forward")),
                module.register_full_backward_pre_hook(self._opener(name, "backward")),
                module.register_full_backward_hook(self._closer(name, "backward")),
            ]

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._cuda:
            import torch

            torch.cuda.synchronize()  # the events of this step have been reached
        for name, kind, start, end in self._closed:
            self._times[name, kind].append(start.elapsed_time(end) if self._cuda else (end - start) * 1000)
        self._closed.clear()

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._times and state.is_world_process_zero:
            print(self.report(), flush=True)
        self._times.clear()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def report(self) -> str:
        """LLaMA-Factory's timing table: per module, the mean milliseconds of a forward and a backward call."""
        lines = ["[ModuleProfiler] Timing (ms):"]
        for name in sorted({name for name, _ in self._times}):
            forward, backward = (_mean(self._times.get((name, kind), [])) for kind in ("forward", "backward"))
            lines.append(f"  {name}: fwd={forward:.3f}, bwd={backward:.3f}, total={forward + backward:.3f}")
        return "\n".join(lines)

    def _mark(self) -> Any:
        if not self._cuda:
            return time.perf_counter()
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _opener(self, name: str, kind: str):
        def hook(module: Any, *_: Any) -> None:
            label = None
            if self.label_in_trace:
                import torch

                label = torch.profiler.record_function(f"{name}.{kind}")
                label.__enter__()
            self._open[name, kind] = (self._mark(), label)

        return hook

    def _closer(self, name: str, kind: str):
        def hook(module: Any, *_: Any) -> None:
            opened = self._open.pop((name, kind), None)
            if opened is None:
                return
            start, label = opened
            self._closed.append((name, kind, start, self._mark()))
            if label is not None:
                label.__exit__(None, None, None)

        return hook


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
