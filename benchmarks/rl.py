"""Online RL on CPU: rollout tokens/s, optimizer steps/s and the share of training time spent sampling, for grpo
and ppo at 1 and 2 Ray Train workers.

    python benchmarks/rl.py                         # grpo and ppo, 1 and 2 workers, 8 steps, the tiny Llama
    python benchmarks/rl.py --stages grpo --steps 16 --model builtin:tiny-qwen

Every run is `lf-ray train`'s code path (`run_training`: Ray Train, 1 CPU a worker) on the shipped arithmetic
prompts, LoRA, with the same number of completions per optimizer step at 1 and 2 workers (the per-worker batch is
halved), so steps/s compare. Sampling is timed inside every worker: the run's reward function is
`benchmarks.rl:sampled`, whose module, imported by each worker when it builds its trainer, wraps transformers'
`generate` with a timer and writes each worker's totals (seconds, non-padding tokens) to a file every step.
Ratios are against 1 worker of the same stage, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

TOTALS_DIR = Path(tempfile.gettempdir()) / "lf_ray_rl_benchmark"
_totals = {"seconds": 0.0, "tokens": 0}


def _timed_generate() -> None:
    """Wrap `GenerationMixin.generate` in this process so it adds its time and new tokens to `_totals`."""
    from transformers.generation.utils import GenerationMixin

    if getattr(GenerationMixin.generate, "timed", False):
        return
    original = GenerationMixin.generate

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        output = original(self, *args, **kwargs)
        _totals["seconds"] += time.perf_counter() - start
        sequences = getattr(output, "sequences", output)
        prompt = kwargs.get("input_ids", args[0] if args else None)
        config = kwargs.get("generation_config") or self.generation_config
        pad = kwargs.get("pad_token_id", config.pad_token_id)
        new = sequences[:, prompt.shape[1] :] if prompt is not None else sequences
        _totals["tokens"] += int((new != pad).sum()) if pad is not None else new.numel()
        return output

    generate.timed = True
    GenerationMixin.generate = generate


def sampled(completions: list[str], **kwargs: Any) -> list[float]:
    """A reward of 0 that writes this worker's sampling totals so far (the benchmark's probe; weight 0)."""
    TOTALS_DIR.mkdir(parents=True, exist_ok=True)
    (TOTALS_DIR / f"{os.getpid()}.json").write_text(json.dumps(_totals))
    return [0.0] * len(completions)


if __name__ != "__main__":  # imported as a reward module on a worker (or by the driver's check)
    _timed_generate()


def overrides(out: Path, model: str, stage: str, workers: int, steps: int) -> list[str]:
    common = [
        f"model_name_or_path={model}",
        f"stage={stage}",
        "do_train=true",
        "finetuning_type=lora",
        "dataset_dir=builtin",
        "dataset=arithmetic_prompts",
        "cutoff_len=128",
        "reward_funcs=numeric_match,benchmarks.rl:sampled",
        "reward_weights=1.0,0.0",
        "temperature=1.0",
        "top_p=1.0",
        "top_k=0",
        "learning_rate=1e-4",
        f"max_steps={steps}",
        "logging_steps=1",
        "save_steps=100000",
        "report_to=none",
        f"output_dir={out}",
        f"ray_storage_path={out.parent / 'ray'}",
        f"ray_num_workers={workers}",
        'resources_per_worker={"CPU": 1}',
        "overwrite_output_dir=true",
    ]
    if stage == "grpo":  # 4 prompts × 8 completions a step
        return [
            *common,
            "num_generations=8",
            "max_completion_length=16",
            f"per_device_train_batch_size={32 // workers}",
        ]
    return [*common, "max_new_tokens=16", "ppo_epochs=4", f"per_device_train_batch_size={16 // workers}"]


def run(model: str, stage: str, workers: int, steps: int, root: Path) -> dict[str, float]:
    from lf_ray.config import prepare_config
    from lf_ray.train.launcher import run_training

    for stale in TOTALS_DIR.glob("*.json"):
        stale.unlink()
    out = root / f"{stage}-{workers}"
    started = time.perf_counter()
    run_training(prepare_config(None, overrides(out, model, stage, workers, steps)), show_progress=False)
    wall = time.perf_counter() - started
    runtime = json.loads((out / "all_results.json").read_text())["train_runtime"]
    totals = [json.loads(path.read_text()) for path in TOTALS_DIR.glob("*.json")]
    if len(totals) != workers:
        raise SystemExit(f"expected sampling totals from {workers} workers, found {len(totals)} in {TOTALS_DIR}")
    sampling = sum(t["seconds"] for t in totals) / workers  # the workers sample side by side
    tokens = sum(t["tokens"] for t in totals)
    return {
        "wall_s": wall,
        "train_runtime_s": runtime,
        "steps_per_s": steps / runtime,
        "rollout_tokens_per_s": tokens / sampling,
        "sampling_share": sampling / runtime,
        "tokens": tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--stages", nargs="+", default=["grpo", "ppo"], choices=["grpo", "ppo"])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    print(f"{args.model}, LoRA, {args.steps} steps, 1 CPU a worker; ratios against 1 worker of the same stage")
    header = ("stage", "workers", "steps/s", "rollout tok/s", "sampling", "train s", "wall s")
    print("{:<5} {:>7} {:>8} {:>14} {:>9} {:>8} {:>7}".format(*header))
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages:
            base = None
            for workers in (1, 2):
                row = run(args.model, stage, workers, args.steps, Path(tmp))
                base = base or row
                ratio = (
                    ""
                    if row is base
                    else (
                        f"   ({row['steps_per_s'] / base['steps_per_s']:.2f}× steps/s, "
                        f"{row['rollout_tokens_per_s'] / base['rollout_tokens_per_s']:.2f}× rollout tok/s)"
                    )
                )
                print(
                    f"{stage:<5} {workers:>7} {row['steps_per_s']:>8.2f} {row['rollout_tokens_per_s']:>14.0f} "
                    f"{row['sampling_share']:>8.0%} {row['train_runtime_s']:>8.1f} {row['wall_s']:>7.1f}{ratio}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
