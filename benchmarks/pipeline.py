"""The DAG's own cost: a pipeline's wall time against its steps' compute, and a fully cached re-run.

    python benchmarks/pipeline.py                              # pipelines/demo.yaml (the SmolLM2 demo, ~8 min)
    python benchmarks/pipeline.py pipelines/sft_lora.yaml     # the tiny model (~2 min)
    python benchmarks/pipeline.py pipelines/sft_lora.yaml --s3  # and again with storage_path on a local S3 server

Runs the pipeline into a fresh storage folder. "step compute" is each step's own time inside its Ray task (from
its manifest); the critical path is the longest chain of them through `needs` (eval and export overlap, so the
sum of all steps can exceed the wall time). Overhead = wall - critical path: planning, Ray start, task
scheduling, MLflow and the run record. The cached re-run is the CLI in a new process, as a user would run it.
With --s3 the same pipeline runs a second time with `storage_path: s3://...` on moto's standalone S3 server
(from the test extras, started here on 127.0.0.1) and the ratio of the two wall times is printed.
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


def run_once(raw: dict, storage: str, work: Path) -> dict:
    """Run the pipeline into `storage`, then re-run it fully cached through the CLI; timings and the steps."""
    raw = {**raw, "storage_path": storage}
    path = work / f"pipeline-{len(list(work.glob('pipeline-*')))}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    started = time.perf_counter()
    result = run_pipeline(plan_pipeline(parse_pipeline(raw, source=str(path))), echo=lambda line: None)
    wall = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"pipeline failed: {result.record.data.get('error')}")
    started = time.perf_counter()
    cached = subprocess.run([sys.executable, "-m", "lf_ray", "run", str(path)], capture_output=True, text=True)
    assert cached.returncode == 0 and "0 of" in cached.stdout, cached.stdout + cached.stderr
    return {"wall": wall, "cached": time.perf_counter() - started, "steps": result.record.data["steps"]}


def report(label: str, run: dict) -> None:
    steps = run["steps"]
    total, path_s, wall = sum(step["duration_s"] for step in steps.values()), critical_path(steps), run["wall"]
    print(f"[{label}]")
    for step_id, step in steps.items():
        print(f"  {step_id:12} {step['uses']:10} {step['duration_s']:8.1f} s")
    print(f"  sum of step compute      {total:8.1f} s")
    print(f"  critical path            {path_s:8.1f} s")
    print(f"  wall (first run)         {wall:8.1f} s")
    print(f"  overhead                 {wall - path_s:8.1f} s  ({(wall - path_s) / wall:.1%} of wall)")
    print(f"  concurrency gain         {total / wall:8.2f} x  (sum of steps / wall)")
    print(f"  cached re-run (CLI)      {run['cached']:8.1f} s  ({run['cached'] / wall:.2%} of the first run)")


def start_s3_server() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free loopback port, with the environment lf-ray (and Ray's workers) read."""
    import os
    import socket

    import boto3

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
    )  # fmt: skip
    for _ in range(100):
        try:
            boto3.client("s3").create_bucket(Bucket="lf-ray-bench")
            return server, "s3://lf-ray-bench/pipelines"
        except Exception:  # not answering yet
            time.sleep(0.2)
    server.kill()
    raise SystemExit("moto_server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pipeline", nargs="?", default=str(ROOT / "pipelines" / "demo.yaml"))
    parser.add_argument("--s3", action="store_true", help="also run it with storage on a local S3 server")
    args = parser.parse_args()
    raw = read_config_file(args.pipeline)
    server = None
    if args.s3:  # before Ray starts, so its workers inherit the endpoint
        server, bucket = start_s3_server()
    try:
        with tempfile.TemporaryDirectory(prefix="lf-ray-bench-") as tmp:
            local = run_once(raw, tmp, Path(tmp))
            remote = run_once(raw, bucket, Path(tmp)) if server else None
    finally:
        if server:
            server.kill()
    print(f"pipeline {raw['name']} ({args.pipeline}), {len(local['steps'])} steps")
    report("local disk", local)
    if remote:
        report("S3 (moto on 127.0.0.1)", remote)
        wall, cached = remote["wall"] / local["wall"], remote["cached"] / local["cached"]
        print(f"S3 / local wall: {wall:.2f} x; cached re-run {cached:.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
