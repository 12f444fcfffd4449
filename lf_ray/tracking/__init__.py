"""Training tracking: LLaMA-Factory's `trainer_log.jsonl`, its loss plots, and MLflow runs.

    callbacks = [TrainerLogCallback()]
    if wants_mlflow(cfg.get("report_to")):       # and give the Trainer report_to_without_mlflow(...)
        callbacks.append(MlflowCallback.from_config(cfg, parent_run_id=parent))
    ...
    plot_loss(output_dir)                        # training_loss.png, training_eval_loss.png
    print(format_progress(read_trainer_log(output_dir)[-1]))

mlflow and matplotlib are imported only when a run starts or a plot is drawn. `swanlab_tracking` (SwanLab's
callback, `use_swanlab`) is imported by the stages only when asked for; `trackers` says which trackers
transformers' own integrations keep (`report_to`) and closes their runs at the end of a worker.
"""

from lf_ray.tracking.mlflow_tracking import MlflowCallback, report_to_without_mlflow, tracking_uri, wants_mlflow
from lf_ray.tracking.plot import plot_loss
from lf_ray.tracking.trainer_log import TRAINER_LOG, TrainerLogCallback, format_progress, read_trainer_log

__all__ = [
    "TRAINER_LOG",
    "MlflowCallback",
    "TrainerLogCallback",
    "format_progress",
    "plot_loss",
    "read_trainer_log",
    "report_to_without_mlflow",
    "tracking_uri",
    "wants_mlflow",
]
