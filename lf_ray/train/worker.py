"""What every Ray Train worker runs: its data shard → model + adapter → the stage's trainer → train → save.

Reads top to bottom like LLaMA-Factory's `workflow.py`; the stage modules differ only in the trainer they
build. Rank 0 writes LLaMA-Factory's output layout into `output_dir`; checkpoints go to Ray's storage
through `RayTrainReportCallback`, and a restarted group resumes from the last one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from lf_ray.constants import DATASET_EVAL_DIR, DATASET_TRAIN_DIR

if TYPE_CHECKING:
    from transformers import Trainer

    from lf_ray.config import LfRayConfig
    from lf_ray.train.stream import ShardStream

STAND_IN_ROWS = 8


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import torch
    from ray.train.huggingface.transformers import RayTrainReportCallback

    from lf_ray import storage
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.model.loading import load_model
    from lf_ray.model.reference import load_reference_model
    from lf_ray.model.reward import load_reward_model
    from lf_ray.stages import STAGES
    from lf_ray.tracking.trackers import finish_tracker_runs
    from lf_ray.train.arguments import build_training_arguments, training_environment
    from lf_ray.train.effective_tokens import with_effective_tokens_per_sec
    from lf_ray.train.launcher import written_locally
    from lf_ray.train.optimizers import custom_optimizer
    from lf_ray.train.stages import StageContext, build_trainer

    cfg: LfRayConfig = loop_config["config"]  # validated on the driver: no rule runs again per worker
    output_uri = loop_config["output_dir"]
    output_dir = str(written_locally(output_uri))  # a URI's outputs are written here, then uploaded by rank 0
    os.environ.update(training_environment(cfg))  # keys transformers 5 reads from the environment
    if loop_config.get("deepspeed") and not torch.cuda.is_available():
        from lf_ray.train.deepspeed import disable_deepspeed_shm_build

        disable_deepspeed_shm_build()  # its C++ op would JIT-compile for ~90 s at every start on CPU

    tokenizer, template = tokenizer_spec(cfg).load()  # with the template's eos / pad / stop words, as preprocessing had
    task = "reward" if STAGES[cfg.finetuning.stage].model_head == "reward" else "causal_lm"
    model, tokenizer = load_model(cfg, for_training=True, task=task, tokenizer=tokenizer)
    training_args = build_training_arguments(
        cfg, output_dir=output_dir, overrides=_argument_overrides(cfg, loop_config)
    )
    train_stream = _stream(cfg, training_args, loop_config["dataset_path"], DATASET_TRAIN_DIR)
    eval_stream = _stream(cfg, training_args, loop_config["dataset_path"], DATASET_EVAL_DIR)
    whole_split = STAGES[cfg.finetuning.stage].whole_split
    rows = None if whole_split else STAND_IN_ROWS
    context = StageContext(
        model=model,
        tokenizer=tokenizer,
        # trainers that insist on a `datasets.Dataset` are built with the first rows, then handed the streams;
        # a `whole_split` stage trains on all of them
        train_dataset=train_stream.head(rows),
        eval_dataset=None if eval_stream is None else eval_stream.head(rows),
        cfg=cfg,
        training_args=training_args,
        callbacks=[RayTrainReportCallback(), *_tracking_callbacks(cfg, loop_config.get("mlflow_run_id"))],
        optimizer=custom_optimizer(model, training_args, cfg),
        ref_model=load_reference_model(cfg, tokenizer),
        reward_model=load_reward_model(cfg, tokenizer),
        template=template,
    )
    trainer = build_trainer(context)
    if not whole_split:
        trainer = stream_worker_shard(trainer, train_stream, eval_stream)

    with _resume_point(cfg) as checkpoint:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = with_effective_tokens_per_sec(result.metrics, cfg, loop_config["dataset_path"], trainer.args.world_size)
    _save_outputs(trainer, tokenizer, cfg, metrics, output_dir)
    finish_tracker_runs()  # SwanLab / W&B: their files are complete before the upload
    if storage.is_uri(output_uri) and trainer.is_world_process_zero():
        _upload_outputs(output_dir, output_uri)
    ray.train.report(metrics={**metrics, "step": trainer.state.global_step})


def _stream(cfg: LfRayConfig, training_args, dataset_path: str, split: str) -> ShardStream | None:
    """This worker's share of a split of the artifact, streamed from its Parquet files (see `train.stream`)."""
    import ray.train

    from lf_ray import storage
    from lf_ray.train.stream import ShardStream, SplitFiles

    location = storage.join(dataset_path, split)
    if not storage.is_dir(location):
        return None
    context = ray.train.get_context()
    return ShardStream(
        SplitFiles.read(location),
        rank=context.get_world_rank(),
        world=context.get_world_size(),
        seed=training_args.seed if training_args.data_seed is None else training_args.data_seed,
        shuffle=split == DATASET_TRAIN_DIR and training_args.train_sampling_strategy != "sequential",
        buffer_rows=cfg.data.buffer_size,
    )


def stream_worker_shard(trainer: Trainer, train: ShardStream, evaluation: ShardStream | None) -> Trainer:
    """Train and evaluate on this worker's streams: load them as they are, instead of letting accelerate shard
    them again, and resume mid-epoch by starting the stream at its position instead of replaying batches."""
    from lf_ray.train.stream import EpochLoader

    base = trainer.__class__

    class StreamedTrainer(base):  # type: ignore[misc, valid-type]
        def _stream_loader(self, stream: ShardStream, batch_size: int) -> EpochLoader:
            return EpochLoader(
                stream,
                batch_size=batch_size,
                collate_fn=self.data_collator,
                drop_last=self.args.dataloader_drop_last,
                num_workers=self.args.dataloader_num_workers,
            )

        def get_train_dataloader(self) -> EpochLoader:
            return self._stream_loader(self.train_dataset, self._train_batch_size)

        def get_eval_dataloader(self, eval_dataset=None) -> EpochLoader:
            stream = self.eval_dataset if eval_dataset is None else eval_dataset
            return self._stream_loader(stream, self.args.eval_batch_size)

        def get_resumed_dataloader(self, dataloader: EpochLoader, num_batches: int) -> EpochLoader:
            return dataloader.resume_at_batch(num_batches)

    StreamedTrainer.__name__ = base.__name__
    trainer.__class__ = StreamedTrainer
    trainer.train_dataset, trainer.eval_dataset = train, evaluation
    return trainer


def _argument_overrides(cfg: LfRayConfig, loop_config: dict[str, Any]) -> dict[str, Any]:
    """The DeepSpeed config the driver resolved, `report_to` minus the trackers lf-ray's callbacks record
    (`tracking.trackers`), and on CPU the gloo DDP settings that make transformers see Ray's worker group as one
    distributed job."""
    import torch

    from lf_ray.tracking.trackers import trainer_report_to

    overrides: dict[str, Any] = {"report_to": trainer_report_to(cfg)}
    if loop_config.get("deepspeed"):
        overrides["deepspeed"] = loop_config["deepspeed"]
        if not torch.cuda.is_available():
            overrides["accelerator_config"] = {"use_configured_state": True}
            _configure_deepspeed_state_on_cpu()
    elif not torch.cuda.is_available():  # else HF takes the gloo worker group for one process and trains alone
        overrides.update(use_cpu=True, ddp_backend="gloo")
    if cfg.finetuning.finetuning_type == "lora" and cfg.training.get("ddp_find_unused_parameters") is None:
        # LLaMA-Factory's rule: a PeftModel under reentrant checkpointing must not search for unused params
        overrides["ddp_find_unused_parameters"] = False
    return overrides


def _configure_deepspeed_state_on_cpu() -> None:
    """Without CUDA, accelerate only counts the worker group when given a backend, which transformers' DeepSpeed
    path does not pass: configure its state for DeepSpeed over gloo here, and let transformers use it."""
    from accelerate import PartialState

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    PartialState(backend="gloo")


def _tracking_callbacks(cfg: LfRayConfig, mlflow_run_id: str | None = None) -> list[Any]:
    """The trainer log always; MLflow when `report_to` asks for it, or into the run a pipeline step or a sweep's
    trial opened (`mlflow_run_id`)."""
    from lf_ray.tracking.mlflow_tracking import MlflowCallback
    from lf_ray.tracking.trackers import wants_mlflow
    from lf_ray.tracking.trainer_log import TrainerLogCallback

    callbacks: list[Any] = [TrainerLogCallback()]
    if mlflow_run_id or wants_mlflow(cfg.training.get("report_to")):
        callbacks.append(MlflowCallback.from_config(cfg, run_id=mlflow_run_id))
    return callbacks


@contextlib.contextmanager
def _resume_point(cfg: LfRayConfig) -> Iterator[str | None]:
    """`resume_from_checkpoint` when given, else the run's latest Ray checkpoint (a restart or a re-run)."""
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback

    if cfg.training.get("resume_from_checkpoint"):
        yield cfg.training["resume_from_checkpoint"]
        return
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        yield f"{directory}/{RayTrainReportCallback.CHECKPOINT_NAME}"


def _upload_outputs(local: str, uri: str) -> None:
    """Commit rank 0's outputs at `uri`: the files of LLaMA-Factory's layout, without the local checkpoint-N
    folders (Ray Train has already persisted those to its storage)."""
    import shutil
    from pathlib import Path

    from lf_ray.artifacts import publish

    for checkpoint in Path(local).glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    publish(Path(local), uri)


def _save_outputs(trainer: Trainer, tokenizer, cfg: LfRayConfig, metrics: dict[str, Any], output_dir: str) -> None:
    """LLaMA-Factory's layout: model or adapter, tokenizer, train/all results, state, loss plot, eval metrics."""
    trainer.save_model(output_dir)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(output_dir)
    if trainer.eval_dataset is not None and trainer.args.do_eval:  # transformers sets it when eval_strategy is on
        trainer.save_metrics("eval", trainer.evaluate())
    if cfg.finetuning.plot_loss and trainer.is_world_process_zero():
        from lf_ray.tracking.plot import plot_loss

        plot_loss(output_dir)
