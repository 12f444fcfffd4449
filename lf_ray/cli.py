"""`lf-ray` command routing: parse argv, load the config, call one step. Nothing else lives here.

Heavy libraries (torch, ray, transformers) are imported inside the command that needs them, so
`lf-ray --help` and `lf-ray version` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

from lf_ray import __version__
from lf_ray.errors import LfRayError
from lf_ray.stages import STAGES

CONFIG_HELP = "a YAML or JSON config with LLaMA-Factory's keys (see `lf-ray keys`)"
DEFAULT_RUNS_STORAGE = "saves/pipelines"
VERBOSE_HELP = "print what Ray's workers print (tqdm bars, Ray Train and Ray Data notices) instead of logging it"
STORAGE_HELP = "where the run's artifacts go instead of the pipeline's storage_path (a folder, or s3://... gs://...)"
OVERRIDES_HELP = "key=value pairs that override the config file, e.g. learning_rate=1e-4 dataset=identity"


def _add_config_command(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("config", help=CONFIG_HELP)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and the plan; touch nothing")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    return parser


def _add_board_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT, else 7860)")
    parser.add_argument(
        "--share", action="store_true", default=None, help="open a public Gradio share link (or GRADIO_SHARE=1)"
    )
    parser.add_argument(
        "--auth",
        metavar="USER:PASSWORD",
        help="the login the board asks for; required with --share or a non-loopback --host (or LF_RAY_BOARD_AUTH, "
        "which keeps the password out of the process list)",
    )
    parser.add_argument(
        "--allow-path",
        action="append",
        default=[],
        metavar="FOLDER_OR_URI",
        help="a folder or storage URI the forms may name besides the start, save and config folders (repeatable; "
        "or LF_RAY_BOARD_PATHS, comma-separated)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lf-ray",
        description="LLaMA-Factory-style fine-tuning as a workflow DAG on Ray.",
        epilog="Every config key, its default and its help: `lf-ray keys` (or `lf-ray keys KEY ...`).",
    )
    parser.add_argument("-V", "--version", action="version", version=f"lf-ray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("version", help="print the lf-ray version")
    sub.add_parser("env", help="versions of the stack, CPU/GPU, and the Ray cluster's resources when reachable")

    preprocess = _add_config_command(sub, "preprocess", "tokenize the config's datasets with Ray Data into Parquet")
    preprocess.add_argument("--workers", type=int, help="tokenizer actors (default: preprocessing_num_workers or CPUs)")

    _add_config_command(sub, "train", "train a stage (pt, sft, rm, dpo, kto) on a Ray Train worker group")
    for stage in STAGES:
        _add_config_command(sub, stage, f"train with stage: {stage} (same as `lf-ray train CONFIG stage={stage}`)")

    for name in ("export", "merge"):
        _add_config_command(
            sub, name, "merge LoRA adapters into the base model and export it (safetensors, chat template)"
        )

    _add_config_command(
        sub, "eval", "evaluate a model + adapters: loss / perplexity, generation metrics, MMLU-style tasks"
    )

    run = sub.add_parser("run", help="run a pipeline (preprocess -> train -> eval -> export ...) on Ray")
    run.add_argument("pipeline", help="a pipeline YAML (see pipelines/)")
    run.add_argument("--dry-run", action="store_true", help="print the graph, each step's config and what is cached")
    run.add_argument("--storage-path", metavar="URI", help=STORAGE_HELP)
    run.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    forced = run.add_mutually_exclusive_group()
    forced.add_argument("--from", dest="from_step", metavar="STEP", help="re-run STEP and every step after it")
    forced.add_argument("--only", dest="only_step", metavar="STEP", help="re-run STEP alone (its inputs must exist)")

    runs = sub.add_parser("runs", help="pipeline runs recorded under a storage path")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    where_help = f"a pipeline YAML, or a storage folder (default: {DEFAULT_RUNS_STORAGE})"
    runs_list = runs_sub.add_parser("list", help="list the runs, newest first")
    runs_list.add_argument("where", nargs="?", default=DEFAULT_RUNS_STORAGE, help=where_help)
    runs_show = runs_sub.add_parser("show", help="a run's steps, statuses, timings, metrics and artifacts")
    runs_show.add_argument("run_id", help="a run id (or a unique prefix)")
    runs_show.add_argument("where", nargs="?", default=DEFAULT_RUNS_STORAGE, help=where_help)

    _add_config_command(sub, "tune", "sweep hyperparameters with Ray Tune: a train config plus a `tune:` section")

    keys = sub.add_parser("keys", help="list config keys with their defaults and help text")
    groups = "model, data, finetuning, generating, ray, eval, tune, serve, training"
    keys.add_argument("names", nargs="*", help=f"keys or groups ({groups})")

    sub.add_parser("templates", help="list the chat templates")

    model = sub.add_parser("model", help="builtin models")
    model_sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    model_sub.add_parser("list", help="list the builtin models")
    build = model_sub.add_parser("build", help="write a builtin model to a directory")
    build.add_argument("name", help="e.g. builtin:tiny-llama")
    build.add_argument("--out", required=True, help="directory to write the model into")

    for name in ("serve", "api"):
        _add_config_command(sub, name, "serve the model behind an OpenAI-compatible API with Ray Serve (until Ctrl-C)")
    chat = _add_config_command(sub, "chat", "chat with the model in the terminal (streaming, history, clear, exit)")
    chat.add_argument("--model", help="a `lora_modules` adapter to chat with (default: the base model)")

    webui = sub.add_parser("webui", help="the web board: train, evaluate, chat, export and pipeline runs in a browser")
    _add_board_options(webui)
    webui.add_argument("--demo", action="store_true", help="demo mode: preview and save only, nothing is launched")
    webui.add_argument("--lang", help="starting language (en, ru, zh, ko, ja)", default="en")
    webui.add_argument("--save-dir", default="saves", help="where runs are written and checkpoints listed")
    webui.add_argument("--config-dir", default="board_configs", help="where Save/Load arguments keep their YAMLs")
    webchat = sub.add_parser("webchat", help="the board's Chat tab alone, for sharing a trained model")
    webchat.add_argument("config", nargs="?", help="an inference config whose model is loaded at start (optional)")
    webchat.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    _add_board_options(webchat)
    webchat.add_argument("--lang", help="starting language (en, ru, zh, ko, ja)", default="en")

    demo = sub.add_parser(
        "demo", help="the demo pipeline: teach the builtin SmolLM2 a new identity (preprocess, LoRA SFT, eval, export)"
    )
    demo.add_argument("--dry-run", action="store_true", help="print the graph and each step's config; touch nothing")
    demo.add_argument("--from", dest="from_step", metavar="STEP", help="re-run STEP and every step after it")
    demo.add_argument("--storage-path", metavar="URI", help=STORAGE_HELP)
    demo.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "verbose", False):
        import os

        from lf_ray.constants import ENV_VERBOSE

        os.environ[ENV_VERBOSE] = "1"  # read where Ray starts, and by the processes a command launches
    terminated: list[int] = []
    try:
        with _sigterm_as_interrupt(terminated):
            return COMMANDS[args.command](args)
    except LfRayError as err:
        print(f"lf-ray {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if terminated:
            print(f"lf-ray {args.command}: stopped by SIGTERM", file=sys.stderr)
            return 128 + signal.SIGTERM
        print(f"lf-ray {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


@contextlib.contextmanager
def _sigterm_as_interrupt(received: list[int]) -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt where Ctrl-C would: every command stops the same way on either signal (its
    `finally` blocks run, a local Ray shuts down with the process, Ray Train workers and Serve applications with
    it). `received` tells the two apart afterwards: Ray re-raises an interruption inside its calls as a plain
    KeyboardInterrupt."""

    def terminate(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_version(_: argparse.Namespace) -> int:
    print(__version__)
    return 0


def cmd_env(_: argparse.Namespace) -> int:
    from lf_ray.environment import describe_environment

    print(describe_environment())
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from lf_ray.config import field_help
    from lf_ray.config.support import key_status

    wanted = set(args.names)
    for key, (group, help_text, default) in sorted(field_help().items(), key=lambda item: (item[1][0], item[0])):
        if not wanted or key in wanted or group in wanted:
            status = key_status(key)
            note = "" if status == "implemented" else f"\n    lf-ray: {status}"
            print(f"{key}  [{group}, default: {default!r}]\n    {help_text}{note}")
    return 0


def cmd_templates(_: argparse.Namespace) -> int:
    from lf_ray.data.templates import template_table

    for name, template in sorted(template_table().items()):
        print(f"{name:16} tools: {template.format_tools.tool_format:8} stop: {', '.join(template.stop_words) or '-'}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from lf_ray.model.builtin import BUILTIN_MODELS, build_builtin_model

    if args.model_command == "list":
        for name, spec in BUILTIN_MODELS.items():
            print(f"builtin:{name:16} template: {spec.template:10} {spec.description}")
        return 0
    out = build_builtin_model(args.name, args.out)
    print(f"wrote {args.name} to {out}")
    return 0


def _load(config: str | None, overrides: Sequence[str]):
    from lf_ray.config import config_warnings, prepare_config

    cfg = prepare_config(config, overrides)
    for warning in config_warnings(cfg):
        print(f"lf-ray: warning: {warning}", file=sys.stderr)
    return cfg


def _run_command(command: str, cfg, dry_run: bool, details: Callable[[], None] | None = None) -> int:
    """Plan the command's steps (`pipeline.command`), print the plan, and run it here unless `dry_run`;
    `details` prints what the dry run adds to the plan."""
    from lf_ray.pipeline.command import command_plan
    from lf_ray.pipeline.executor import run_here
    from lf_ray.pipeline.report import print_plan, print_run

    plan = command_plan(command, cfg)
    if dry_run:
        print("# resolved config (keys that differ from the defaults)")
        print(cfg.to_yaml(non_default_only=True).rstrip() + "\n")
        print_plan(plan, configs=False)
        if details:
            details()
        return 0
    print_plan(plan, configs=False)
    result = run_here(plan)
    print()
    print_run(result.record)
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    workers = [f"preprocessing_num_workers={args.workers}"] if args.workers else []
    return _run_command("preprocess", _load(args.config, [*args.overrides, *workers]), args.dry_run)


def cmd_train(args: argparse.Namespace) -> int:
    from lf_ray.reporting import print_train_plan
    from lf_ray.train.launcher import check_trainable, training_checks

    stage = [f"stage={args.command}"] if args.command in STAGES else []
    cfg = _load(args.config, [*args.overrides, *stage])

    def details() -> None:
        print_train_plan(cfg)
        check_trainable(cfg, require_inputs=True)  # every problem at once, as one ConfigError (exit status 2)
        print(f"\n# checks passed: {', '.join(training_checks(cfg))}")

    return _run_command("train", cfg, args.dry_run, details)


def cmd_export(args: argparse.Namespace) -> int:
    cfg = _load(args.config, args.overrides)

    def details() -> None:
        adapters = ", ".join(cfg.model.adapter_name_or_path or []) or "none (copy the model)"
        print(f"\n# plan: export (dry run)\nmodel        {cfg.model.model_name_or_path}\nadapters     {adapters}")
        print(f"export_dir   {cfg.model.export_dir} (shards of {cfg.model.export_size} GB)")

    return _run_command("export", cfg, args.dry_run, details)


def cmd_tune(args: argparse.Namespace) -> int:
    from lf_ray.tune import sweep_name, tune_spec
    from lf_ray.tune.plan import describe_tune_plan

    cfg = _load(args.config, args.overrides)
    spec = tune_spec(cfg)
    return _run_command("tune", cfg, args.dry_run, lambda: print("\n" + describe_tune_plan(cfg, spec, sweep_name(cfg))))


def cmd_eval(args: argparse.Namespace) -> int:
    from lf_ray.evaluate.evaluator import plan_eval
    from lf_ray.reporting import print_eval_plan

    cfg = _load(args.config, args.overrides)
    return _run_command("eval", cfg, args.dry_run, lambda: print_eval_plan(cfg, plan_eval(cfg)))


def _run_pipeline(path: str, args: argparse.Namespace) -> tuple[int, object]:
    import dataclasses

    from lf_ray.pipeline.executor import hold_endpoints, run_pipeline
    from lf_ray.pipeline.plan import plan_pipeline
    from lf_ray.pipeline.report import print_plan, print_result
    from lf_ray.pipeline.spec import load_pipeline

    spec = load_pipeline(path)
    if args.storage_path:
        spec = dataclasses.replace(spec, storage_path=args.storage_path)
    plan = plan_pipeline(spec, from_step=args.from_step, only_step=getattr(args, "only_step", None))
    print_plan(plan, configs=args.dry_run)
    if args.dry_run:
        return 0, None
    result = run_pipeline(plan)
    print_result(result)
    if result.ok:
        hold_endpoints(result)
    return (0 if result.ok else 1), result


def cmd_run(args: argparse.Namespace) -> int:
    return _run_pipeline(args.pipeline, args)[0]


def cmd_runs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lf_ray.pipeline.report import print_run, print_runs
    from lf_ray.pipeline.store import find_run, find_runs

    where = args.where
    if Path(where).suffix in (".yaml", ".yml", ".json") and Path(where).is_file():
        from lf_ray.pipeline.plan import pipeline_root
        from lf_ray.pipeline.spec import load_pipeline

        where = pipeline_root(load_pipeline(where))
    if args.runs_command == "list":
        print_runs(find_runs(where))
    else:
        print_run(find_run(where, args.run_id))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lf_ray.constants import DEMO_PIPELINE
    from lf_ray.demo import print_demo_summary

    code, result = _run_pipeline(str(DEMO_PIPELINE), args)
    if result is not None and code == 0:
        print_demo_summary(result)
    return code


def _load_serve_config(args: argparse.Namespace):
    from lf_ray.serve.options import check_serve_config

    cfg = _load(args.config, args.overrides)
    check_serve_config(cfg)
    return cfg


def cmd_serve(args: argparse.Namespace) -> int:
    from lf_ray.serve.options import serve_plan
    from lf_ray.serve.service import model_ids

    cfg = _load_serve_config(args)
    if args.dry_run:
        print(cfg.to_yaml(non_default_only=True).rstrip())
        print("\n" + "\n".join(serve_plan(cfg, model_ids(cfg))))
        if cfg.model.infer_backend == "vllm":
            from lf_ray.serve.vllm import vllm_llm_config

            print(f"llm_config   {vllm_llm_config(cfg)}")
        return 0
    from lf_ray.serve.app import start_serve

    start_serve(cfg, blocking=True)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from lf_ray.errors import ConfigError
    from lf_ray.serve.service import model_ids

    cfg = _load_serve_config(args)
    if cfg.finetuning.stage == "rm":
        raise ConfigError(
            "`stage: rm` loads a reward model, which scores texts and does not chat. Fix: serve it with "
            "`lf-ray serve` (POST /v1/score/evaluation), or remove `stage: rm` to chat with a generative model"
        )
    if args.dry_run:
        print(cfg.to_yaml(non_default_only=True).rstrip())
        print(
            f"\n# plan: chat (dry run)\nmodel        {args.model or model_ids(cfg)[0]} of {', '.join(model_ids(cfg))}"
        )
        return 0
    from lf_ray.serve.chat import run_chat

    run_chat(cfg, model=args.model)
    return 0


def _board_language(lang: str) -> str:
    from lf_ray.errors import ConfigError
    from lf_ray.webui.locales import languages

    if lang not in languages():
        raise ConfigError(f"--lang {lang!r} is not a board language; use one of {', '.join(languages())}")
    return lang


def cmd_webui(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lf_ray.webui.roots import board_auth

    lang = _board_language(args.lang)
    auth = board_auth(args.host, args.share, args.auth)  # before Gradio loads: a refusal costs nothing
    from lf_ray.webui.app import create_ui, launch
    from lf_ray.webui.board import Board

    board = Board(
        demo_mode=args.demo,
        save_dir=Path(args.save_dir),
        config_dir=Path(args.config_dir),
        lang=lang,
        allowed_paths=tuple(args.allow_path),
    )
    launch(create_ui(board), host=args.host, port=args.port, share=args.share, auth=auth)
    closing = board.runner.close()  # Gradio returns on Ctrl-C or SIGTERM, once its server is closed
    if closing:
        print(f"lf-ray webui: {closing}", file=sys.stderr)
    return 0


def cmd_webchat(args: argparse.Namespace) -> int:
    from lf_ray.webui.roots import board_auth

    lang = _board_language(args.lang)
    auth = board_auth(args.host, args.share, args.auth)
    from lf_ray.webui.app import create_web_chat, launch
    from lf_ray.webui.board import Board
    from lf_ray.webui.board_args import top_state

    state = top_state(_load(args.config, args.overrides)) if args.config else None
    board = Board(lang=lang, allowed_paths=tuple(args.allow_path))
    launch(create_web_chat(board, state), host=args.host, port=args.port, share=args.share, auth=auth)
    return 0


COMMANDS = {
    "version": cmd_version,
    "env": cmd_env,
    "keys": cmd_keys,
    "templates": cmd_templates,
    "model": cmd_model,
    "preprocess": cmd_preprocess,
    "demo": cmd_demo,
    "eval": cmd_eval,
    "run": cmd_run,
    "runs": cmd_runs,
    "train": cmd_train,
    "export": cmd_export,
    "merge": cmd_export,
    "tune": cmd_tune,
    "serve": cmd_serve,
    "api": cmd_serve,
    "chat": cmd_chat,
    "webui": cmd_webui,
    "webchat": cmd_webchat,
    **dict.fromkeys(STAGES, cmd_train),
}
