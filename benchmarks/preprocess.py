"""Preprocess throughput: the Ray Data step vs `datasets.map(num_proc=2)` over the same processors.

    python benchmarks/preprocess.py                 # 20k and 200k rows, builtin:tiny-llama
    python benchmarks/preprocess.py --rows 5000 --model builtin:smollm2-135m --packing

Both sides read the same synthetic alpaca file, convert it with the same code and tokenize with the same
template and processor; the baseline is what LLaMA-Factory runs with `preprocessing_num_workers: 2`
(`Dataset.map` in 2 processes). Prints rows/s, tokens/s, the ratio, the driver's peak RSS during lf-ray's run
(the rows stay in the actors) and, with `--packing`, the packed-token efficiency (real tokens / slots).
Ray's start-up is excluded (a cluster is up before a pipeline runs).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from lf_ray.config import prepare_config
from lf_ray.constants import DEMO_DATA_DIR
from lf_ray.data.loader import load_canonical_splits
from lf_ray.data.preprocess import run_preprocess
from lf_ray.data.processors import EncodeSettings, encode_row
from lf_ray.data.tokenizer_spec import tokenizer_spec


def write_dataset(directory: Path, rows: int) -> None:
    """`rows` alpaca rows made by recombining the shipped demo rows (deterministic), written as JSON lines one
    row at a time, so this process's peak memory is lf-ray's, not the generator's."""
    source = json.loads((DEMO_DATA_DIR / "alpaca_en_demo.json").read_text())
    source += json.loads((DEMO_DATA_DIR / "identity.json").read_text())
    rng = random.Random(0)
    with (directory / "bench.jsonl").open("w") as out:
        for index in range(rows):
            a, b = rng.choice(source), rng.choice(source)
            row = {"instruction": f"{a['instruction']} (#{index})", "input": b["input"], "output": b["output"]}
            out.write(json.dumps(row) + "\n")
    (directory / "dataset_info.json").write_text(json.dumps({"bench": {"file_name": "bench.jsonl"}}))


def baseline(cfg, procs: int) -> tuple[float, int]:
    """LLaMA-Factory's way: `datasets.Dataset.map` over the rows in `procs` processes."""
    import datasets

    started = time.perf_counter()
    splits = load_canonical_splits(cfg.data, "sft", 42)
    tokenizer, template = tokenizer_spec(cfg).load()
    settings = EncodeSettings(cfg.data.cutoff_len)

    def encode(batch):
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        encoded = [encode_row("supervised", template, tokenizer, row, settings) for row in rows]
        return {key: [row[key] for row in encoded] for key in ("input_ids", "attention_mask", "labels")}

    dataset = datasets.Dataset(splits.train).map(
        encode, batched=True, remove_columns=splits.train.column_names, num_proc=procs if procs > 1 else None
    )
    with tempfile.TemporaryDirectory() as out:
        dataset.to_parquet(f"{out}/train.parquet")
    tokens = sum(len(ids) for ids in dataset["input_ids"])
    return time.perf_counter() - started, tokens


def run(rows: int, model: str, workers: int | None, procs: int, packing: bool, read: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_dataset(directory, rows)
        overrides = [
            f"model_name_or_path={model}",
            "stage=sft",
            f"dataset_dir={directory}",
            "dataset=bench",
            "cutoff_len=256",
            f"tokenized_path={directory / 'out'}",
            "overwrite_cache=true",
            f"packing={packing}",
            *([f"preprocessing_num_workers={workers}"] if workers else []),
        ]
        cfg = prepare_config(None, overrides)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        distributed = {"auto": None, "driver": False, "distributed": True}[read]
        result = run_preprocess(cfg, distributed=distributed)
        ray_seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; before the baseline inflates it
        base_seconds, base_tokens = baseline(cfg, procs) if procs else (float("nan"), 0)
        tokens = result.manifest["metrics"]["tokens"]
        print(
            f"{rows:>7} rows | datasets.map ({procs} processes): {rows / base_seconds:8.0f} rows/s "
            f"{base_tokens / base_seconds:10.0f} tok/s | lf-ray ({result.manifest['read']} read, "
            f"{result.manifest['actors']} actors): "
            f"{rows / ray_seconds:8.0f} rows/s {tokens / ray_seconds:10.0f} tok/s "
            f"| ratio {base_seconds / ray_seconds:.2f}x"
        )
        print(f"        lf-ray driver peak RSS {peak / 1024:.0f} MiB ({(peak - before) / 1024:+.0f} MiB in this run)")
        if packing:
            train = result.manifest["splits"]["train"]
            slots = train["rows_out"] * cfg.data.cutoff_len
            efficiency = train["tokens"] / slots
            print(f"        packed: {train['rows_out']} rows, efficiency {efficiency:.3f} (real tokens / slots)")
        print(f"        lf-ray stage timings: {result.manifest['timings']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[20_000, 200_000])
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--workers", type=int, default=None, help="lf-ray's tokenizer actors (default: the CPUs)")
    parser.add_argument("--baseline-procs", type=int, default=2, help="datasets.map's num_proc")
    parser.add_argument("--packing", action="store_true", help="pack sft rows (LF's `packing: true`) on both sides")
    parser.add_argument("--read", choices=["auto", "driver", "distributed"], default="auto", help="lf-ray's read path")
    parser.add_argument("--no-baseline", action="store_true", help="lf-ray only (big sizes)")
    args = parser.parse_args()

    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        for rows in args.rows:
            run(rows, args.model, args.workers, 0 if args.no_baseline else args.baseline_procs, args.packing, args.read)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
