"""The GPU check: lf-ray's own training stages and serve engine on one CUDA GPU, without Ray, in minutes.

    make gpu-check                        # on a GPU machine; `make gpu-wheels` first where TRL/datasets are missing
    python -m benchmarks.gpu_check        # the same, where lf-ray's dependencies are installed
    python -m benchmarks.gpu_check --size tiny --device cpu --steps 8 --cutoff-len 64   # the CPU run a test makes

It builds a ~1B-parameter Llama from a config (TinyLlama-1.1B's shape with the builtin tiny tokenizer; random
weights, nothing downloaded), then runs each part for `--steps` optimizer steps on the builtin demo datasets:

- `sft` with LoRA on every linear layer, in bf16 with SDPA attention (fp32 on a CPU);
- `dpo` with LoRA (its reference is the adapter switched off, as LLaMA-Factory's);
- `qlora`: the sft run on the base quantized to 4 bits by bitsandbytes (skipped, and said so, without it or on a
  CPU);
- `generate`: the serve engine decodes `--prompts` rows together, half of them through the sft run's adapter.

Each part prints tokens/s, model FLOPs utilisation and peak GPU memory. FLOPs follow PaLM's count per token (6N with
full weight gradients) under LoRA: 4N (the frozen base computes no weight gradients), plus 12·L·d·S for attention;
dpo adds its reference's forward (2N + 4·L·d·S), generation is 2N + 4·L·d·S. N counts the matrix weights (the
embedding lookup is not a product), S is the mean sequence length. MFU needs the card's dense bf16 peak: known
cards are in `PEAK_BF16_TFLOPS`, or pass `--peak-tflops`. The first step of each run is a warm-up and is not timed.

It fails (exit 1) on a non-finite loss or weight, or a loss that does not fall; the figures go to stdout and to
`--out` as JSON. Ray is never imported: each stage's trainer is built as a Ray Train worker builds it
(`lf_ray.train.stages.build_trainer`), in this process.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

SHAPES: dict[str, dict[str, int]] = {
    # TinyLlama-1.1B's layers; with the tiny tokenizer's 2,055 tokens that is 0.98 B parameters
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
    },
    "tiny": {},  # the builtin tiny Llama's own
}

PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    # dense bf16 tensor-core peaks from the vendor's data sheets; the first name contained in the device's wins
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)

DATASETS = {"sft": "alpaca_en_demo", "dpo": "dpo_en_demo"}
LEARNING_RATES = {"sft": 1e-3, "dpo": 5e-4}
MIN_LOSS_DROP = 0.01
"""The loss must end at least 1% below where it started (the means of the first and last quarter of the steps)."""


# --- arithmetic ------------------------------------------------------------------------------------------------


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a known card, by its name; None for others (and CPUs)."""
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS if name in device_name), None)


def matmul_params(config: Any) -> int:
    """Weights that take part in matrix products per token: every decoder layer's projections and the LM head."""
    d, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (d // config.num_attention_heads)
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * config.intermediate_size
    return layers * per_layer + d * config.vocab_size


def flops_per_token(config: Any, seq_len: float, *, part: str) -> float:
    """Model FLOPs per token of `part` (sft, qlora, dpo: trained tokens under LoRA; generate: decoded tokens)."""
    n = matmul_params(config)
    attention = 4 * config.num_hidden_layers * config.hidden_size * seq_len  # one forward
    if part == "generate":
        return 2 * n + attention
    flops = 4 * n + 3 * attention  # LoRA: forward, and the backward's activation gradients only
    if part == "dpo":
        flops += 2 * n + attention  # the reference's forward over the same tokens
    return flops


def mfu(tokens_per_s: float, flops: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation as a fraction of `peak` TFLOP/s, or None without a known peak."""
    return None if not peak else tokens_per_s * flops / (peak * 1e12)


def loss_problem(losses: list[float]) -> str | None:
    """Why these logged losses fail the check: none logged, a non-finite one, or no fall; None when they pass."""
    if not losses:
        return "no loss was logged"
    for step, value in enumerate(losses, start=1):
        if not math.isfinite(value):
            return f"the loss at step {step} is {value}"
    quarter = max(1, len(losses) // 4)
    first, last = sum(losses[:quarter]) / quarter, sum(losses[-quarter:]) / quarter
    if last > first * (1 - MIN_LOSS_DROP):
        return (
            f"the loss did not fall: {first:.4f} over the first {quarter} step(s), {last:.4f} over the last "
            f"{quarter} (it must fall by {MIN_LOSS_DROP:.0%})"
        )
    return None


# --- measuring -------------------------------------------------------------------------------------------------


class TokenCounter:
    """Wraps a collator and counts the tokens (attention-mask ones) and sequences of each batch it makes.

    Batches are counted in the order they are collated, so step i's are batch i's (one batch per step here) even
    when the data loader collates one batch ahead.
    """

    def __init__(self, collate: Any) -> None:
        self.collate = collate
        self.tokens: list[int] = []
        self.sequences: list[int] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        masks = [value for key, value in batch.items() if key.endswith("attention_mask")]
        self.tokens.append(int(sum(mask.sum() for mask in masks)))
        self.sequences.append(sum(mask.shape[0] for mask in masks))
        return batch


class StepClock(TrainerCallback):
    """Times each optimizer step, the device synchronised at both ends."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.seconds: list[float] = []
        self._started = 0.0

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        _sync(self.device)
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        _sync(self.device)
        self.seconds.append(time.perf_counter() - self._started)


def throughput(counter: TokenCounter, clock: StepClock) -> dict[str, float]:
    """Tokens/s and the mean sequence length over the steps after the first (a warm-up), or over the only one."""
    timed = slice(1, len(clock.seconds)) if len(clock.seconds) > 1 else slice(0, 1)
    tokens, sequences, seconds = sum(counter.tokens[timed]), sum(counter.sequences[timed]), sum(clock.seconds[timed])
    return {
        "steps_timed": len(clock.seconds[timed]),
        "tokens_per_s": tokens / seconds if seconds else 0.0,
        "mean_seq_len": tokens / sequences if sequences else 0.0,
    }


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _reset_peak_memory(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


# --- the parts -------------------------------------------------------------------------------------------------


def build_model(size: str, out_dir: Path) -> Path:
    """A Llama of `SHAPES[size]` with random weights and the builtin tiny tokenizer, saved in `out_dir`."""
    from lf_ray.model.tiny_models import TINY_LLAMA, build_tiny_model

    build_tiny_model(dataclasses.replace(TINY_LLAMA, **SHAPES[size]), out_dir)
    return out_dir


def config_keys(model_dir: Path, part: str, args: argparse.Namespace) -> list[str]:
    """LLaMA-Factory keys of one part, as a user would write them."""
    stage = "dpo" if part == "dpo" else "sft"
    keys = [
        f"model_name_or_path={model_dir}",
        "template=llama3",
        f"stage={stage}",
        "finetuning_type=lora",
        "lora_target=all",
        "lora_rank=16",
        "flash_attn=sdpa",
        "dataset_dir=builtin",
        f"dataset={DATASETS[stage]}",
        f"cutoff_len={args.cutoff_len}",
        f"learning_rate={LEARNING_RATES[stage]}",
        "lr_scheduler_type=constant",
        f"max_steps={args.steps}",
        f"per_device_train_batch_size={args.batch_size // 2 if stage == 'dpo' else args.batch_size}",
        "logging_steps=1",
        "save_strategy='no'",
        "report_to=none",
        "seed=0",
        "disable_tqdm=true",
    ]
    if args.device == "cuda":
        keys.append("bf16=true")
    if part == "qlora":
        keys.append("quantization_bit=4")
    return keys


def _encoded_rows(cfg, tokenizer, template, stage: str, cutoff_len: int) -> list[dict[str, Any]]:
    from lf_ray.data.loader import load_canonical_splits
    from lf_ray.data.preprocess import encode_table
    from lf_ray.data.processors import EncodeSettings, processor_kind

    splits = load_canonical_splits(cfg.data, stage, 42)
    table = encode_table(splits.train, template, tokenizer, processor_kind(stage), EncodeSettings(cutoff_len))
    return [row for row in table.to_pylist() if row["_drop_reason"] is None]


def train_part(part: str, model_dir: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train one part for `args.steps` steps; its figures, losses, and the problem found (or None)."""
    import datasets

    from lf_ray.config import prepare_config
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.model.loading import load_model
    from lf_ray.train.arguments import build_training_arguments
    from lf_ray.train.stages import StageContext, build_trainer

    cfg = prepare_config(None, config_keys(model_dir, part, args))
    stage = cfg.finetuning.stage
    tokenizer, template = tokenizer_spec(cfg).load()
    rows = _encoded_rows(cfg, tokenizer, template, stage, args.cutoff_len)
    _reset_peak_memory(args.device)
    model, tokenizer = load_model(cfg, for_training=True, tokenizer=tokenizer)
    on_cpu = {"use_cpu": True} if args.device == "cpu" else {}
    training_args = build_training_arguments(cfg, output_dir=str(work / part), overrides=on_cpu)
    context = StageContext(
        cfg=cfg,
        model=model,
        tokenizer=tokenizer,
        training_args=training_args,
        train_dataset=datasets.Dataset.from_list(rows),
        template=template,
    )
    trainer = build_trainer(context)
    counter, clock = TokenCounter(trainer.data_collator), StepClock(args.device)
    trainer.data_collator = counter
    trainer.add_callback(clock)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    trained = [name for name, param in model.named_parameters() if param.requires_grad]
    broken = [name for name, param in model.named_parameters() if param.requires_grad and not param.isfinite().all()]
    problem = loss_problem(losses) or (f"non-finite weights after training: {broken[:3]}" if broken else None)
    if not trained:
        problem = problem or "no parameter was trainable"
    figures = throughput(counter, clock)
    flops = flops_per_token(model.config, figures["mean_seq_len"], part=part)
    result = {
        **figures,
        "train_seconds": round(seconds, 2),
        "mfu": mfu(figures["tokens_per_s"], flops, args.peak_tflops),
        "peak_memory_gib": _peak_memory_gib(args.device),
        "dtype": str(next(p for p in model.parameters() if p.is_floating_point()).dtype).removeprefix("torch."),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "problem": problem,
    }
    if part == "sft":
        trainer.save_model(str(work / "sft-adapter"))
    del trainer, model, context
    _reset_peak_memory(args.device)
    return result


def generate_part(model_dir: Path, adapter_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The serve engine decodes `args.prompts` rows at once, every other one through the sft adapter."""
    from lf_ray.config import prepare_config
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.model.loading import load_model
    from lf_ray.serve.engine import GenerationRow, SamplingParams, TransformersEngine

    cfg = prepare_config(None, config_keys(model_dir, "sft", args))
    tokenizer, template = tokenizer_spec(cfg).load()
    rows = _encoded_rows(cfg, tokenizer, template, "sft", args.cutoff_len)
    _reset_peak_memory(args.device)
    model, tokenizer = load_model(cfg, for_training=False, tokenizer=tokenizer)
    # random weights would hit a stop token at random: every row decodes its whole budget instead
    engine = TransformersEngine(model.to(args.device), tokenizer, stop_token_ids=())
    engine.load_adapter("sft", str(adapter_dir))
    params = SamplingParams(max_new_tokens=args.new_tokens)
    prompts = [[i for i, label in zip(row["input_ids"], row["labels"], strict=True) if label == -100] for row in rows]
    batch = [GenerationRow(prompts[i % len(prompts)], params, "sft" if i % 2 else None) for i in range(args.prompts)]
    for _ in engine.generate(batch[:2]):  # warm-up
        pass
    _sync(args.device)
    started = time.perf_counter()
    first_step, decoded = None, [0] * len(batch)
    for deltas in engine.generate(batch):
        first_step = first_step or time.perf_counter() - started
        for i, delta in enumerate(deltas):
            decoded[i] = delta.completion_tokens if delta is not None else decoded[i]
    _sync(args.device)
    seconds = time.perf_counter() - started
    tokens, expected = sum(decoded), len(batch) * args.new_tokens
    mean_len = sum(map(len, (row.prompt_ids for row in batch))) / len(batch) + args.new_tokens / 2
    tokens_per_s = tokens / seconds
    result = {
        "rows": len(batch),
        "tokens": tokens,
        "tokens_per_s": tokens_per_s,
        "first_step_s": round(first_step or 0.0, 3),
        "mfu": mfu(tokens_per_s, flops_per_token(model.config, mean_len, part="generate"), args.peak_tflops),
        "peak_memory_gib": _peak_memory_gib(args.device),
        "problem": None if tokens == expected else f"{tokens} tokens decoded, not {expected}",
    }
    del engine, model
    _reset_peak_memory(args.device)
    return result


# --- the check -------------------------------------------------------------------------------------------------


def environment(device: str) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    versions = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__}
    versions["peft"] = peft.__version__
    for name in ("trl", "datasets", "bitsandbytes", "accelerate"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    return {"device": name, **versions}


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """Every part in turn; the report (figures, and `problems`: an empty list when the check passes)."""
    import importlib.util

    report: dict[str, Any] = {"environment": environment(args.device), "size": args.size, "steps": args.steps}
    if args.peak_tflops is None:
        args.peak_tflops = peak_tflops(report["environment"]["device"])
    report["peak_bf16_tflops"] = args.peak_tflops
    with tempfile.TemporaryDirectory(prefix="lf_ray_gpu_check_") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        model_dir = build_model(args.size, work / "model")
        report["build_seconds"] = round(time.perf_counter() - started, 1)
        parts: dict[str, Any] = {}
        for part in args.parts:
            if part == "qlora" and (args.device != "cuda" or importlib.util.find_spec("bitsandbytes") is None):
                parts[part] = {"skipped": "needs CUDA and bitsandbytes (make gpu-wheels brings its wheel)"}
            elif part == "generate":
                parts[part] = generate_part(model_dir, work / "sft-adapter", args)
            else:
                parts[part] = train_part(part, model_dir, work, args)
            print(_line(part, parts[part]), flush=True)
        report["parts"] = parts
    report["problems"] = [f"{part}: {figures['problem']}" for part, figures in parts.items() if figures.get("problem")]
    return report


def _line(part: str, figures: dict[str, Any]) -> str:
    if "skipped" in figures:
        return f"{part:9} skipped: {figures['skipped']}"
    memory, utilisation = figures["peak_memory_gib"], figures["mfu"]
    text = (
        f"{part:9} {figures['tokens_per_s']:10,.0f} tokens/s"
        f"   MFU {'n/a' if utilisation is None else f'{utilisation:.1%}'}"
        f"   peak memory {'n/a' if memory is None else f'{memory:.1f} GiB'}"
    )
    if "first_loss" in figures and figures["first_loss"] is not None:
        text += f"   loss {figures['first_loss']:.3f} -> {figures['last_loss']:.3f}"
    return text + (f"   PROBLEM: {figures['problem']}" if figures.get("problem") else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps of each training part")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per step (dpo: half as many pairs)")
    parser.add_argument("--cutoff-len", type=int, default=512)
    parser.add_argument("--prompts", type=int, default=32, help="rows the serve engine decodes together")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens each of them decodes")
    parser.add_argument("--parts", nargs="+", choices=["sft", "dpo", "qlora", "generate"], default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (for MFU)")
    parser.add_argument("--out", type=Path, default=Path("saves/gpu_check.json"))
    args = parser.parse_args(argv)
    args.parts = args.parts or ["sft", "dpo", "qlora", "generate"]
    if "generate" in args.parts and "sft" not in args.parts:
        parser.error("--parts generate decodes through the sft part's adapter: name sft too")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here (pass --device cpu for the CPU run)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report = run_check(args)
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    env = report["environment"]
    print(f"{env['device']}, torch {env['torch']}, transformers {env['transformers']}: {report['seconds']} s")
    print(f"report: {args.out}")
    for problem in report["problems"]:
        print(f"FAILED {problem}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
