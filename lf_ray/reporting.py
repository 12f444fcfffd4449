"""What a step prints when it has run (a single command's console and a pipeline step's log), and the dry runs'
steps details."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lf_ray.config import LfRayConfig
    from lf_ray.data.preprocess import PreprocessResult
    from lf_ray.evaluate.evaluator import EvalPlan, EvalResult
    from lf_ray.train.launcher import TrainResult


def print_preprocess_summary(result: PreprocessResult) -> None:
    manifest = result.manifest
    state = "reused cached artifact" if result.reused else "built"
    print(f"preprocess: {state} {result.path}")
    for split, stats in manifest.get("splits", {}).items():
        line = (
            f"  {split:5} {stats['rows_in']:>7} rows in -> {stats['rows_out']:>7} rows out "
            f"({stats['processor']}), {stats['tokens']} tokens, {stats['truncated']} truncated, "
            f"{stats['dropped']} dropped"
        )
        print(line)
        for reason, count in stats["drop_reasons"].items():
            print(f"        dropped {count}: {reason}")
    timings = manifest.get("timings", {})
    if not result.reused and timings:
        where = f"on {manifest['actors']} tokenizer actor(s)" if manifest["actors"] else "in this process (small data)"
        print(
            f"  {timings['processing_s']} s: {timings['rows_per_s']} rows/s, {timings['tokens_per_s']} tokens/s "
            f"{where} (plus {timings['load_tokenizer_s']} s loading the tokenizer)"
        )


def print_train_plan(cfg: LfRayConfig) -> None:
    from lf_ray.train.launcher import default_run_name, storage_path

    ray = cfg.ray
    resources = ray.resources_per_worker or "auto: {GPU: 1} when the cluster has GPUs, else {CPU: 1}"
    print("\n# plan: train (dry run)")
    print(f"stage        {cfg.finetuning.stage} / {cfg.finetuning.finetuning_type}")
    print(f"workers      {ray.ray_num_workers} x {resources}, placement {ray.placement_strategy}")
    print(f"ray run      {storage_path(cfg)}/{default_run_name(cfg)} (resumes from its last checkpoint if any)")
    print(f"failures     up to {ray.max_failures} restarts from the last checkpoint")
    print(f"output_dir   {cfg.training.get('output_dir')}")


def print_train_summary(result: TrainResult) -> None:
    print(f"train: done, outputs in {result.output_dir}")
    print(f"  ray run     {result.run_path}")
    print(f"  checkpoint  {result.checkpoint_path or '-'}")
    shown = {
        k: round(v, 4) if isinstance(v, float) else v for k, v in result.metrics.items() if "loss" in k or k == "step"
    }
    print(f"  metrics     {shown}")


def print_eval_plan(cfg: LfRayConfig, plan: EvalPlan) -> None:
    adapters = ", ".join(cfg.model.adapter_name_or_path or []) or "none"
    print("\n# plan: eval (dry run: nothing was loaded or written)")
    print(f"model        {cfg.model.model_name_or_path} (adapters: {adapters})")
    loss_rows = ", ".join(cfg.data.eval_dataset or cfg.data.dataset or [])
    print(f"loss         {'eval split of ' + loss_rows if plan.loss else '-'}")
    print(f"predict      {'generate on ' + ', '.join(cfg.data.eval_dataset or []) if plan.predict else '-'}")
    print(f"task         {plan.task or '-'}")
    print(f"results      {plan.results_dir}")


def print_eval_summary(result: EvalResult) -> None:
    print(f"eval: results in {result.results_dir}")
    for key, value in result.metrics.items():
        print(f"  {key:24} {round(value, 4) if isinstance(value, float) else value}")
    if result.predictions:
        print(f"  predictions              {result.predictions}")
