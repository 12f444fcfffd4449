"""The fixed cost of single commands, as a user runs them: `lf-ray preprocess` of a small dataset, in a new
process each time (its own Ray start), against `lf-ray version` (the interpreter and CLI alone).

    python benchmarks/commands.py                  # 100 alpaca rows on builtin:tiny-llama, 3 runs each
    python benchmarks/commands.py --rows 1000 --repeat 5

Each preprocess run writes to a fresh folder, so nothing is reused from a cache; the built tiny model is (as
it is for a user after the first command). Prints each wall time, the median, and the ratio to `version`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lf_ray.constants import DEMO_DATA_DIR


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lf_ray", *argv], cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lf-ray-bench-") as tmp:
        work = Path(tmp)
        rows = json.loads((DEMO_DATA_DIR / "alpaca_en_demo.json").read_text())
        (work / "rows.json").write_text(json.dumps([rows[i % len(rows)] for i in range(args.rows)]))
        (work / "dataset_info.json").write_text(json.dumps({"rows": {"file_name": "rows.json"}}))
        config = {"model_name_or_path": "builtin:tiny-llama", "template": "llama3", "dataset": "rows"}
        (work / "cfg.json").write_text(json.dumps({**config, "dataset_dir": str(work)}))
        version = [timed(["version"], work) for _ in range(args.repeat)]
        preprocess = [timed(["preprocess", "cfg.json", f"tokenized_path=out{i}"], work) for i in range(args.repeat)]
    base, cost = statistics.median(version), statistics.median(preprocess)
    print(f"lf-ray version                  {', '.join(f'{s:.2f}' for s in version)} s (median {base:.2f} s)")
    print(
        f"lf-ray preprocess ({args.rows} rows)  {', '.join(f'{s:.1f}' for s in preprocess)} s "
        f"(median {cost:.1f} s = {cost / base:.0f} x version)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
