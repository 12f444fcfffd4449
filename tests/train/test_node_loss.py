"""Losing a node mid-run. A 2-worker Ray Train group on a simulated cluster (`ray.cluster_utils.Cluster`: a head
without CPUs and two nodes of one CPU each, so one worker per node), in a process of its own since the test
session already holds a Ray instance. Once the checkpoint of step 4 is registered, the node of one worker is
removed. What is left cannot place the group (one CPU for two workers), so Ray Train waits for resources; a
replacement node joins, and the group restarts on it from the checkpoint and finishes."""

from __future__ import annotations

import textwrap

from tests.cluster_scripts import run_cluster_script

SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys, threading, time
    import ray
    from ray.cluster_utils import Cluster
    from lf_ray.config import prepare_config
    from lf_ray.tracking.trainer_log import read_trainer_log
    from lf_ray.train.launcher import run_training
    from tests.checkpoints import checkpoint_registered

    out = pathlib.Path(sys.argv[1])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    cfg = prepare_config(None, [
        "model_name_or_path=builtin:tiny-llama", "stage=sft", "do_train=true", "finetuning_type=lora",
        "dataset_dir=builtin", "dataset=identity", "cutoff_len=96", "per_device_train_batch_size=2",
        "learning_rate=0.005", "logging_steps=1", "report_to=none", "max_steps=10", "save_steps=4",
        "max_failures=1", "ray_num_workers=2", 'resources_per_worker={"CPU": 1}',
        f"output_dir={out / 'out'}", f"ray_storage_path={out / 'ray'}",
    ])

    def logged_steps():
        log = out / "out" / "trainer_log.jsonl"
        return [e["current_steps"] for e in read_trainer_log(log) if "loss" in e] if log.is_file() else []

    def train_worker_nodes():  # every node a Train worker ran on, the dead workers' too
        from ray.util.state import list_actors
        return sorted({a.node_id for a in list_actors(detail=True, limit=1000) if "RayTrainWorker" in a.class_name})

    result = {}
    runner = threading.Thread(target=lambda: result.update(done=run_training(cfg, show_progress=False)))
    runner.start()
    deadline = time.monotonic() + 300
    while runner.is_alive() and time.monotonic() < deadline and not checkpoint_registered(str(out / "ray")):
        time.sleep(0.2)
    steps_at_removal, nodes_before = max(logged_steps() or [0]), train_worker_nodes()
    cluster.remove_node(nodes[1])
    time.sleep(3)  # the group fails, and one CPU cannot place it again
    replacement = cluster.add_node(num_cpus=1)
    runner.join(timeout=400)
    print("RESULT " + json.dumps({
        "finished": "done" in result, "steps": logged_steps(), "steps_at_removal": steps_at_removal,
        "nodes_before": nodes_before, "nodes_ever": train_worker_nodes(),
        "nodes": [node.node_id for node in nodes], "replacement": replacement.node_id,
    }))
    ray.shutdown()
    cluster.shutdown()
    """
)


def test_a_lost_node_restarts_the_group_on_a_new_node_from_the_last_checkpoint(tmp_path):
    result = run_cluster_script(SCRIPT, tmp_path, timeout=600)
    assert result["finished"], result
    kept, removed = result["nodes"]
    assert result["nodes_before"] == sorted([kept, removed]), result  # one worker on each node
    assert result["nodes_ever"] == sorted([kept, removed, result["replacement"]]), result  # restarted on the new node
    assert result["steps_at_removal"] >= 4, result  # the checkpoint of step 4 was registered first
    assert result["steps"] == list(range(1, 11)), result  # resumed at the checkpoint: no step lost, none twice
