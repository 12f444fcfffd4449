"""The quiet console: Ray's streamed worker output goes to a log file; only lf-ray's step tasks' standard output
reaches the console (unless verbose)."""

from __future__ import annotations

from lf_ray import console


def test_only_step_tasks_standard_output_reaches_the_console(tmp_path, capsys):
    log = tmp_path / "ray.log"
    console.route_batch(log, {"task_name": "lf-ray sft_lora.sft", "lines": ["[sft] [train] step 2/4"], "is_err": False})
    console.route_batch(log, {"task_name": "lf-ray sft_lora.sft", "lines": ["a library warning"], "is_err": True})
    console.route_batch(log, {"actor_name": "RayTrainWorker", "pid": 7, "lines": ["{'loss': '7.6'}"], "is_err": False})
    console.route_batch(log, {"pid": "raylet", "lines": ["core_worker.cc:2465: Actor ..."], "is_err": True})
    assert capsys.readouterr().out == "[sft] [train] step 2/4\n"
    assert log.read_text().splitlines() == [
        "(lf-ray sft_lora.sft) [sft] [train] step 2/4",
        "(lf-ray sft_lora.sft, stderr) a library warning",
        "(RayTrainWorker) {'loss': '7.6'}",
        "(raylet, stderr) core_worker.cc:2465: Actor ...",
    ]


def test_verbose_leaves_rays_console_alone(monkeypatch):
    from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

    monkeypatch.setattr(dispatcher, "handlers", [("ray_print_logs", print)])
    monkeypatch.setenv("LF_RAY_VERBOSE", "1")
    assert console.route_worker_output() is None and [name for name, _ in dispatcher.handlers] == ["ray_print_logs"]
    monkeypatch.setenv("LF_RAY_VERBOSE", "0")
    log = console.route_worker_output()
    assert log is not None and log.parent.name == "logs"
    assert [name for name, _ in dispatcher.handlers] == ["lf_ray_console"]
    assert console.route_worker_output() is None  # installed once: Ray's printer is gone
