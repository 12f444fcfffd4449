"""The DAG's own cost: a pipeline's wall time against its steps' compute, and a fully cached re-run.

    python benchmarks/pipeline.py                              # pipelines/demo.yaml (the SmolLM2 demo, ~8 min)
    python benchmarks/pipeline.py pipelines/sft_lora.yaml     # the tiny model (~2 min)

Runs the pipeline into a fresh storage folder. "step compute" is each step's own time inside its Ray task (from
its manifest); the critical path is the longest chain of them through `needs` (eval and export overlap, so the
sum of all steps can exceed the wall time). Overhead = wall - critical path: planning, Ray start, task
scheduling, MLflow and the run record. The cached re-run is the CLI in a new process, as a user would run it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lf_ray.config import read_config_file
from lf_ray.pipeline.executor import run_pipeline
from lf_ray.pipeline.plan import plan_pipeline
from lf_ray.pipeline.spec import parse_pipeline

ROOT = Path(__file__).resolve().parents[1]


def critical_path(steps: dict[str, dict]) -> float:
    finish: dict[str, float] = {}
    for step_id, step in steps.items():  # the record keeps execution order
        before = max((finish[need] for need in step["needs"]), default=0.0)
        finish[step_id] = before + (step.get("duration_s") or 0.0)
    return max(finish.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default=str(ROOT / "pipelines" / "demo.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lf-ray-bench-") as tmp:
        raw = read_config_file(args.pipeline)
        raw["storage_path"] = tmp
        path = Path(tmp) / "pipeline.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))

        started = time.perf_counter()
        result = run_pipeline(plan_pipeline(parse_pipeline(raw, source=str(path))), echo=lambda line: None)
        wall = time.perf_counter() - started
        if not result.ok:
            print(f"pipeline failed: {result.record.data.get('error')}")
            return 1
        steps = result.record.data["steps"]
        total = sum(step["duration_s"] for step in steps.values())
        path_s = critical_path(steps)

        started = time.perf_counter()
        cached = subprocess.run(
            [sys.executable, "-m", "lf_ray", "run", str(path)], capture_output=True, text=True, check=True
        )
        cached_wall = time.perf_counter() - started
        assert "0 of" in cached.stdout, cached.stdout

    print(f"pipeline {raw['name']} ({args.pipeline}), {len(steps)} steps")
    for step_id, step in steps.items():
        print(f"  {step_id:12} {step['uses']:10} {step['duration_s']:8.1f} s")
    print(f"sum of step compute      {total:8.1f} s")
    print(f"critical path            {path_s:8.1f} s")
    print(f"wall (first run)         {wall:8.1f} s")
    print(f"overhead                 {wall - path_s:8.1f} s  ({(wall - path_s) / wall:.1%} of wall)")
    print(f"concurrency gain         {total / wall:8.2f} x  (sum of steps / wall)")
    print(f"cached re-run (CLI)      {cached_wall:8.1f} s  ({cached_wall / wall:.2%} of the first run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
