"""Token-for-token parity with LLaMA-Factory 0.9.5: LF's own data pipeline and lf-ray's preprocess step read the same
data with the same tokenizer and settings, and their tokenized rows are compared.

Setup, once: LF 0.9.5 in a folder of its own, without its dependencies (the .venv's transformers / datasets / peft /
trl serve it); omegaconf is the one missing import it needs.

    pip download --no-deps llamafactory==0.9.5 -d /tmp/lfwheel
    .venv/bin/pip install --no-deps --target /tmp/lf095 /tmp/lfwheel/llamafactory-0.9.5-py3-none-any.whl \\
        omegaconf==2.3.0 antlr4-python3-runtime==4.9.3

Run:

    python benchmarks/lf_parity.py --lf-path /tmp/lf095                        # every case
    python benchmarks/lf_parity.py --lf-path /tmp/lf095 --cases sft_packing,pt
    python benchmarks/lf_parity.py --lf-path /tmp/lf095 --data-dir ~/LLaMA-Factory/data

Data: `--data-dir` is a folder whose dataset_info.json registers `alpaca_en_demo` and `c4_demo` (LF's own `data/`
is one). Without it, LF's demo files at v0.9.5 are read from the git mirror `--mirror` into a temp folder.
The tokenizer on both sides is `--model`'s (default builtin:tiny-llama; its local folder is LF's `model_name_or_path`).

Each LF case runs in a fresh process (LF sets env vars and logging, and patches `datasets` for neat_packing), with
`DISABLE_VERSION_CHECK=1` and these shims, none of which touches tokenization:
  - `torchaudio` (not installed) is an empty module while `llamafactory` is imported: only mm_plugin imports it, to
    load audio files. It leaves sys.modules again, after transformers has cached "no torchaudio".
  - `trl.AutoModelForCausalLMWithValueHead` (gone from newer trl, e.g. the .venv's 1.16) is an empty class: only
    LF's model loader imports it, for PPO value heads.

Prints one line per case (per split where there is an eval split); exit code 0 when every case is identical.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MIRROR = "/work/.mirror/hiyouga+LLaMA-Factory/repo"
LF_TAG = "v0.9.5"
DATA_FILES = {"alpaca_en_demo": "alpaca_en_demo.json", "c4_demo": "c4_demo.jsonl"}
DATASET_INFO = {
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}},
}
COMPARED = ("input_ids", "labels", "attention_mask", "position_ids")
SPLITS = {"train": "train_dataset", "eval": "eval_dataset"}  # lf-ray's folder -> LF's DatasetModule key
Rows = dict[str, list[list[int]]]  # column -> one list of ids per row


@dataclass(frozen=True)
class Case:
    name: str
    stage: str
    dataset: str
    args: dict[str, Any] = field(default_factory=dict)  # on top of template llama3, cutoff_len 256


CASES = (
    Case("sft_packing", "sft", "alpaca_en_demo", {"packing": True}),
    Case("sft_neat_packing", "sft", "alpaca_en_demo", {"packing": True, "neat_packing": True}),
    Case("sft", "sft", "alpaca_en_demo"),
    Case("pt_packing", "pt", "c4_demo", {"packing": True}),  # differs, documented: LF cuts 1 when set explicitly
    Case("pt", "pt", "c4_demo"),  # LF: packing on for pt, cutoff_len unchanged
    Case("sft_val", "sft", "alpaca_en_demo", {"val_size": 0.1}),
)
COMMON = {"template": "llama3", "cutoff_len": 256}


# --- LLaMA-Factory's side (runs in a child process) ---


def import_llamafactory(lf_path: str) -> Any:
    """`llamafactory` 0.9.5 from `lf_path`, on this .venv's newer libraries (see the module docstring)."""
    import types

    os.environ["DISABLE_VERSION_CHECK"] = "1"
    os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "WARN")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    sys.path.insert(0, lf_path)
    import datasets  # noqa: F401  (imported before the shim: transformers caches "no torchaudio")
    import peft  # noqa: F401
    import transformers  # noqa: F401
    import trl

    if not hasattr(trl, "AutoModelForCausalLMWithValueHead"):
        trl.AutoModelForCausalLMWithValueHead = type("AutoModelForCausalLMWithValueHead", (), {})
    had_torchaudio = "torchaudio" in sys.modules
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        import llamafactory.data
        import llamafactory.hparams
        import llamafactory.model
    finally:
        if not had_torchaudio:
            sys.modules.pop("torchaudio")
    return llamafactory


def lf_args(case: Case, model_dir: str, data_dir: str, work: str) -> dict[str, Any]:
    return {
        "model_name_or_path": model_dir,
        "stage": case.stage,
        "do_train": True,
        "finetuning_type": "lora",
        "dataset_dir": data_dir,
        "dataset": case.dataset,
        "output_dir": f"{work}/output",
        "cache_dir": f"{work}/cache",
        "report_to": "none",
        "overwrite_cache": True,
        **COMMON,
        **case.args,
    }


def lf_rows(case: Case, lf_path: str, model_dir: str, data_dir: str) -> dict[str, Rows]:
    """Run LF's get_dataset for `case`; its train (and eval) rows, per compared column. Runs in a child process:
    LF's logs and printed examples go to stderr, leaving stdout to the table."""
    sys.stdout = sys.stderr  # before the import: LF's log handler keeps the stream it is made with
    lf = import_llamafactory(lf_path)
    with tempfile.TemporaryDirectory(prefix="lf-parity-") as work:
        model_args, data_args, training_args, _, _ = lf.hparams.get_train_args(lf_args(case, model_dir, data_dir, work))
        tokenizer_module = lf.model.load_tokenizer(model_args)
        template = lf.data.get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
        module = lf.data.get_dataset(template, model_args, data_args, training_args, case.stage, **tokenizer_module)
        return {split: columns_of(module[key]) for split, key in SPLITS.items() if module.get(key) is not None}


def columns_of(dataset: Any) -> Rows:
    """The compared columns of a `datasets.Dataset`, as plain lists."""
    return dataset.select_columns([column for column in COMPARED if column in dataset.column_names]).to_dict()


def run_lf(case: Case, lf_path: str, model_dir: str, data_dir: str) -> dict[str, Rows]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(lf_rows, case, lf_path, model_dir, data_dir).result()


# --- lf-ray's side ---


def lf_ray_overrides(case: Case, model: str, data_dir: str, out: str) -> list[str]:
    values = {"model_name_or_path": model, "dataset_dir": data_dir, "dataset": case.dataset, "tokenized_path": out}
    values.update(COMMON, **case.args)
    settings = [f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in values.items()]
    return [f"stage={case.stage}", "do_train=true", *settings]


def read_split(folder: Path) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    if not files:
        return {}
    table = pa.concat_tables([pq.read_table(path) for path in files])
    return {column: table.column(column).to_pylist() for column in COMPARED if column in table.column_names}


def ray_rows(case: Case, model: str, data_dir: str) -> dict[str, Rows]:
    from lf_ray.config import prepare_config
    from lf_ray.data.preprocess import run_preprocess

    with tempfile.TemporaryDirectory(prefix="lf-ray-parity-") as out:
        cfg = prepare_config(None, lf_ray_overrides(case, model, data_dir, f"{out}/tokenized"))
        root = Path(run_preprocess(cfg).path)
        return {split: rows for split in SPLITS if (rows := read_split(root / split))}


def model_dir(model: str) -> str:
    """`model`'s local folder (a builtin model is built on first use): LF loads the same tokenizer from it."""
    from lf_ray.model.loader import resolve_model_path

    return resolve_model_path(model)


# --- comparison ---


def shape(rows: Rows) -> str:
    lengths = [len(ids) for ids in rows.get("input_ids", [])]
    if not lengths:
        return "0"
    low, high = min(lengths), max(lengths)
    return f"{len(lengths)} × {low}" if low == high else f"{len(lengths)} × {low}–{high}"


def first_difference(lf: Rows, ours: Rows) -> str | None:
    """None when identical; otherwise where the first difference is (row, column, token)."""
    missing = [column for column in lf if column not in ours] + [column for column in ours if column not in lf]
    if missing:
        return f"columns only on one side: {', '.join(missing)}"
    lf_count, our_count = len(lf["input_ids"]), len(ours["input_ids"])
    for row in range(min(lf_count, our_count)):
        for column in lf:
            a, b = lf[column][row], ours[column][row]
            if a != b:
                token = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
                return f"row {row} {column}[{token}] (len {len(a)} vs {len(b)})"
    if lf_count != our_count:
        return f"row {min(lf_count, our_count)}: only {'LF' if lf_count > our_count else 'lf-ray'} has it"
    return None


def compare_case(case: Case, lf: dict[str, Rows], ours: dict[str, Rows]) -> list[tuple[str, ...]]:
    lines = []
    for split in SPLITS:
        if split not in lf and split not in ours:
            continue
        a, b = lf.get(split, {}), ours.get(split, {})
        diff = first_difference(a, b) if a and b else f"{split} split on one side only"
        name = case.name if split == "train" else f"{case.name}/{split}"
        lines.append((name, shape(a), shape(b), "yes" if diff is None else "NO", diff or ""))
    return lines


def print_table(lines: list[tuple[str, ...]]) -> None:
    header = ("case", "LF rows × len", "lf-ray rows × len", "identical", "first difference")
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, tuple("-" * w for w in widths), *lines]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


# --- data and main ---


def extract_demo_data(mirror: str, directory: Path) -> None:
    """LF's demo files at v0.9.5 from its git mirror, with a dataset_info.json registering them."""
    for name in DATA_FILES.values():
        blob = subprocess.run(
            ["git", "-C", mirror, "show", f"{LF_TAG}:data/{name}"], check=True, capture_output=True
        ).stdout
        (directory / name).write_bytes(blob)
    (directory / "dataset_info.json").write_text(json.dumps(DATASET_INFO, indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lf-path", required=True, help="folder holding llamafactory 0.9.5 (pip install --target)")
    parser.add_argument("--data-dir", help="folder whose dataset_info.json registers alpaca_en_demo and c4_demo")
    parser.add_argument("--model", default="builtin:tiny-llama", help="tokenizer: a builtin model or a local folder")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="LLaMA-Factory git mirror (used without --data-dir)")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated subset of cases")
    args = parser.parse_args()
    known = {case.name for case in CASES}
    if unknown := set(args.cases.split(",")) - known:
        parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(c.name for c in CASES)}")
    return args


def run_cases(cases: list[Case], lf_path: str, model: str, data_dir: str) -> list[tuple[str, ...]]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    lines = []
    for case in cases:
        print(f"[{case.name}] LLaMA-Factory ...", file=sys.stderr, flush=True)
        lf = run_lf(case, lf_path, model_dir(model), data_dir)
        print(f"[{case.name}] lf-ray ...", file=sys.stderr, flush=True)
        lines += compare_case(case, lf, ray_rows(case, model, data_dir))
    return lines


def main() -> int:
    args = parse_args()
    cases = [case for case in CASES if case.name in args.cases.split(",")]
    with tempfile.TemporaryDirectory(prefix="lf-parity-data-") as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = scratch
            extract_demo_data(args.mirror, Path(scratch))
        lines = run_cases(cases, str(Path(args.lf_path).resolve()), args.model, str(Path(data_dir).resolve()))
    print_table(lines)
    return 0 if all(line[3] == "yes" for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
