"""Training tracking: LLaMA-Factory's `trainer_log.jsonl` (`trainer_log`), its loss plots (`plot`), MLflow runs
(`mlflow_tracking`), SwanLab (`swanlab_tracking`), the torch profiler (`profiler`), and `trackers`: which of
transformers' own integrations `report_to` keeps, whether their packages are installed, and closing their runs
at the end of a worker.

    callbacks = [TrainerLogCallback()]
    if wants_mlflow(cfg.get("report_to")):       # and give the Trainer report_to_without_mlflow(...)
        callbacks.append(MlflowCallback.from_config(cfg, parent_run_id=parent))
    ...
    plot_loss(output_dir)                        # training_loss.png, training_eval_loss.png, training_reward.png
    print(format_progress(read_trainer_log(output_dir)[-1]))

Nothing is imported here: `trackers` must stay light (the CLI's plan-time checks read it), while the callbacks
import transformers. mlflow and matplotlib are imported only when a run starts or a plot is drawn.
"""
