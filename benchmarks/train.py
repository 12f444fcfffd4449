"""Training throughput: effective (non-padding) tokens/s of SFT LoRA on the builtin tiny model.

    python benchmarks/train.py                   # 1 and 2 workers, packing off and on, + baseline
    python benchmarks/train.py --epochs 3 --model builtin:tiny-qwen
    python benchmarks/train.py --worker-rss 100000 1000000   # workers' peak RSS, same steps, growing data
    python benchmarks/train.py --qlora --model builtin:smollm2-135m   # LoRA vs QLoRA 4-bit: memory, tokens/s
    python benchmarks/train.py --optimizers      # full tuning: AdamW vs GaLore / APOLLO / Adam-mini / BAdam / Muon

The baseline is a single-process transformers Trainer over the same tokenized Parquet, in this process
(no Ray). lf-ray's numbers use each run's own `train_runtime` (worker group start-up is printed apart).
Ratios are against the baseline of the same run. `--worker-rss` trains 2 workers for the same 30 steps on
generated alpaca sets of each size and prints the training workers' peak RSS (sampled every 0.2 s), which
should not grow with the data: each worker streams its share. `--qlora` trains the same steps on the same rows
in one Trainer process each (a fresh process per variant, so each peak RSS is its own): LoRA on the full-precision
base, then on the base quantized to 4 bits by bitsandbytes; `--optimizers` trains the whole model with AdamW,
GaLore, APOLLO, Adam-mini, BAdam (layer- and ratio-wise) and Muon and prints each optimizer's state. Ratios are
against the first variant.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from lf_ray.config import prepare_config


def overrides(out: Path, model: str, epochs: int, workers: int, packing: bool) -> list[str]:
    return [
        f"model_name_or_path={model}",
        "stage=sft",
        "do_train=true",
        "finetuning_type=lora",
        "dataset_dir=builtin",
        "dataset=identity,alpaca_en_demo",
        "cutoff_len=256",
        f"packing={str(packing).lower()}",
        "per_device_train_batch_size=4",
        "learning_rate=0.001",
        f"num_train_epochs={epochs}",
        "logging_steps=5",
        "save_steps=100000",
        "report_to=none",
        f"output_dir={out}",
        f"ray_storage_path={out.parent / 'ray'}",
        f"ray_num_workers={workers}",
        'resources_per_worker={"CPU": 1}',
        "overwrite_output_dir=true",
    ]


def baseline(cfg, dataset_path: Path) -> tuple[float, Any]:
    """Seconds of a single-process Trainer over the same Parquet (the model and optimizer built as a worker builds
    them), and the trainer."""
    import datasets

    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.model.loading import load_model
    from lf_ray.train.arguments import build_training_arguments
    from lf_ray.train.optimizers import custom_optimizer
    from lf_ray.train.stages import StageContext, build_trainer

    train = datasets.Dataset.from_parquet(str(Path(dataset_path) / "train" / "*.parquet"))
    tokenizer, _ = tokenizer_spec(cfg).load()
    model, tokenizer = load_model(cfg, for_training=True, tokenizer=tokenizer)
    args = build_training_arguments(cfg, output_dir=cfg.training["output_dir"], overrides={"use_cpu": True})
    optimizer = custom_optimizer(model, args, cfg)
    trainer = build_trainer(StageContext(cfg, model, tokenizer, args, train, optimizer=optimizer))
    return trainer.train().metrics["train_runtime"], trainer


def worker_rss(sizes: list[int], model: str) -> None:
    """The training workers' peak RSS for the same steps over datasets of growing size."""
    import threading

    import psutil
    import ray
    from preprocess import write_dataset  # benchmarks/preprocess.py, beside this script

    from lf_ray.train.launcher import run_training

    ray.init(include_dashboard=False, log_to_driver=False)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            data = Path(tmp) / f"data{rows}"
            data.mkdir()
            write_dataset(data, rows)
            out = Path(tmp) / f"out{rows}"
            values = overrides(out, model, 1, 2, False)
            values = [v for v in values if not v.startswith(("dataset", "num_train_epochs"))]
            values += [f"dataset_dir={data}", "dataset=bench", "max_steps=30", "cutoff_len=128"]
            cfg = prepare_config(None, values)
            peak, done = [0], threading.Event()

            def sample(peak=peak, done=done) -> None:
                while not done.wait(0.2):
                    for process in psutil.process_iter(["cmdline", "memory_info"]):
                        if any("RayTrainWorker" in part for part in process.info["cmdline"] or []):
                            peak[0] = max(peak[0], process.info["memory_info"].rss)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            run_training(cfg, show_progress=False)
            done.set()
            sampler.join()
            results.append((rows, peak[0] / 2**20, time.perf_counter() - started))
    ray.shutdown()
    print(f"\n{'rows':>10} {'worker peak RSS MiB':>20} {'vs first':>9} {'wall s':>8}   (2 workers, 30 steps)")
    for rows, mib, wall in results:
        print(f"{rows:>10} {mib:20.0f} {mib / results[0][1]:8.2f}x {wall:8.1f}")


def _fit(values: list[str], dataset_path: str) -> tuple[float, float, float, float]:
    """In a fresh process: the baseline Trainer's seconds, the model's footprint, its optimizer's state and the
    process's peak RSS (MiB)."""
    import resource

    seconds, trainer = baseline(prepare_config(None, values), Path(dataset_path))
    optimizer = trainer.optimizer.optimizer
    optimizer = getattr(optimizer, "base_optimizer", optimizer)  # layer-wise BAdam keeps Adam's state in its base
    state = sum(
        value.numel() * value.element_size()
        for entry in optimizer.state.values()
        for value in entry.values()
        if hasattr(value, "numel")
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return seconds, trainer.model.get_memory_footprint() / 2**20, state / 2**20, peak


def compare(model: str, steps: int, base: list[str], variants: dict[str, list[str]], columns: tuple[str, ...]) -> None:
    """Train each variant for the same steps on the same rows, each in a fresh process; ratios against the first."""
    import multiprocessing

    from lf_ray.data.preprocess import run_preprocess

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        values = [*overrides(Path(tmp) / "out", model, 1, 1, True), f"max_steps={steps}", *base]
        dataset = run_preprocess(prepare_config(None, values))
        rows = dataset.manifest["splits"]["train"]["rows_out"]
        tokens = dataset.manifest["splits"]["train"]["tokens"] * min(1.0, steps * 4 / rows)
        for name, extra in variants.items():
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                results[name] = pool.apply(_fit, ([*values, *extra], dataset.path))
    first = next(iter(results.values()))
    print(f"\n{model}, {steps} steps of 4 packed rows, one process on CPU; ratios against {next(iter(results))}")
    names = {"tokens/s": 0, "model MiB": 1, "optimizer state MiB": 2, "peak RSS MiB": 3}
    print(f"{'variant':34} " + " ".join(f"{column:>20} {'':>6}" for column in columns))
    for name, values in results.items():
        cells = []
        for column in columns:
            index = names[column]
            value = tokens / values[0] if index == 0 else values[index]
            ratio = first[0] / values[0] if index == 0 else values[index] / first[index]
            cells.append(f"{value:20.1f} {ratio:5.2f}x")
        print(f"{name:34} " + " ".join(cells))


QLORA = {"LoRA": [], "QLoRA 4-bit (nf4, double quant)": ["quantization_bit=4"]}
OPTIMIZERS = {
    "AdamW": [],
    "GaLore (rank 16)": ["use_galore=true", "galore_rank=16"],
    "APOLLO (rank 16)": ["use_apollo=true", "apollo_rank=16"],
    "Adam-mini": ["use_adam_mini=true"],
    "BAdam (layer, switch every 5 steps)": ["use_badam=true", "badam_switch_interval=5"],
    "BAdam (ratio 0.05)": ["use_badam=true", "badam_mode=ratio"],
    "Muon (+ AdamW for the rest)": ["use_muon=true"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--worker-rss", type=int, nargs="+", metavar="ROWS", help="workers' peak RSS per data size")
    parser.add_argument("--qlora", action="store_true", help="LoRA vs QLoRA 4-bit: memory and tokens/s")
    parser.add_argument(
        "--optimizers", action="store_true", help="full tuning: AdamW vs GaLore, APOLLO, Adam-mini, BAdam, Muon"
    )
    parser.add_argument("--steps", type=int, default=20, help="training steps of each --qlora / --optimizers variant")
    args = parser.parse_args()
    if args.qlora:
        compare(args.model, args.steps, [], QLORA, ("tokens/s", "model MiB", "peak RSS MiB"))
        return
    if args.optimizers:
        full = ["finetuning_type=full"]
        compare(args.model, args.steps, full, OPTIMIZERS, ("tokens/s", "optimizer state MiB", "peak RSS MiB"))
        return
    if args.worker_rss:
        worker_rss(args.worker_rss, args.model)
        return

    import ray

    from lf_ray.data.preprocess import run_preprocess
    from lf_ray.train.launcher import run_training

    ray.init(include_dashboard=False, log_to_driver=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base_cfg = prepare_config(None, overrides(Path(tmp) / "base", args.model, args.epochs, 1, False))
        dataset = run_preprocess(base_cfg)
        tokens = dataset.manifest["splits"]["train"]["tokens"] * args.epochs
        base_seconds, _ = baseline(base_cfg, dataset.path)
        rows.append(("transformers Trainer, 1 process", "off", base_seconds, None))
        for workers in (1, 2):
            for packing in (False, True):
                out = Path(tmp) / f"w{workers}_p{int(packing)}"
                cfg = prepare_config(None, overrides(out, args.model, args.epochs, workers, packing))
                started = time.perf_counter()
                result = run_training(cfg, show_progress=False)
                wall = time.perf_counter() - started
                runtime = json.loads((out / "train_results.json").read_text())["train_runtime"]
                rows.append((f"lf-ray, {workers} worker(s)", "on" if packing else "off", runtime, wall))
                assert result.output_dir == out.resolve()
    ray.shutdown()

    print(f"\nSFT LoRA on {args.model}: {tokens} effective tokens ({args.epochs} epochs)")
    print(f"{'setup':34} {'packing':8} {'train s':>8} {'tok/s':>9} {'vs baseline':>12} {'wall s':>8}")
    for name, packing, seconds, wall in rows:
        wall_text = f"{wall:8.1f}" if wall else "       -"
        print(
            f"{name:34} {packing:8} {seconds:8.1f} {tokens / seconds:9.0f} {base_seconds / seconds:11.2f}x {wall_text}"
        )


if __name__ == "__main__":
    main()
