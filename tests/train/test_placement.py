"""Worker placement on a simulated two-node cluster (`ray.cluster_utils.Cluster`), run in its own process
because the test session already holds a Ray instance."""

from __future__ import annotations

import textwrap

from tests.cluster_scripts import run_cluster_script

SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys
    import ray
    from ray.cluster_utils import Cluster
    from ray.train import RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from lf_ray.config import prepare_config
    from lf_ray.train.launcher import build_scaling_config

    out = pathlib.Path(sys.argv[1])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)  # advertises a GPU; the loop never touches it
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)

    def loop(config):
        import ray.train
        rank = ray.train.get_context().get_world_rank()
        (pathlib.Path(config["dir"]) / f"{rank}.node").write_text(ray.get_runtime_context().get_node_id())

    def run(name, overrides):
        cfg = prepare_config(None, ["model_name_or_path=x", *overrides])
        scaling = build_scaling_config(cfg.ray, ray.cluster_resources().get("GPU", 0))
        directory = out / name
        directory.mkdir()
        TorchTrainer(
            loop, train_loop_config={"dir": str(directory)}, scaling_config=scaling,
            torch_config=TorchConfig(backend="gloo"), run_config=RunConfig(name=name, storage_path=str(out / "ray")),
        ).fit()
        nodes = [path.read_text() for path in sorted(directory.glob("*.node"))]
        return {"resources": scaling.resources_per_worker, "nodes": nodes}

    spread = run("spread", ["ray_num_workers=2", "placement_strategy=SPREAD", 'resources_per_worker={"CPU": 1}'])
    gpu = run("gpu", ["ray_num_workers=1"])  # resources left to lf-ray: the cluster has a GPU, so one per worker
    head = [n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU", 0) == 0][0]
    print("RESULT " + json.dumps({"head": head, "gpu_node": gpu_node.node_id, "spread": spread, "gpu": gpu}))
    ray.shutdown()
    cluster.shutdown()
    """
)


def test_spread_puts_workers_on_different_nodes_and_gpu_work_skips_the_gpu_less_head(tmp_path):
    result = run_cluster_script(SCRIPT, tmp_path, timeout=400)
    assert len(set(result["spread"]["nodes"])) == 2  # SPREAD: one worker per node
    assert result["gpu"]["resources"] == {"GPU": 1.0}
    assert result["gpu"]["nodes"] == [result["gpu_node"]] and result["gpu_node"] != result["head"]
