"""The Train tab: data, hyperparameters, LoRA / freeze / RLHF / DeepSpeed / Ray options; preview, save, load,
start, abort; the log, the progress bar and the loss curve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from lf_ray.errors import LfRayError
from lf_ray.stages import STAGES
from lf_ray.webui.board import Board
from lf_ray.webui.board_args import (
    COMPUTE_TYPES,
    DEEPSPEED_STAGES,
    dataset_choices,
    preview_rows,
)
from lf_ray.webui.board_configs import load_board_config, run_form, save_board_config
from lf_ray.webui.components import button, follow_dataset_dir, follow_model
from lf_ray.webui.locales import message

SCHEDULERS = ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]
PREF_LOSSES = ["sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo"]


def default_dataset_dir() -> str:
    """`data` when the working folder has LLaMA-Factory's data/dataset_info.json, else the shipped datasets."""
    return "data" if os.path.isfile("data/dataset_info.json") else "builtin"


def _data_rows(board: Board) -> dict[str, Any]:
    with gr.Row():
        stage = gr.Dropdown(choices=list(STAGES), value="sft", scale=1, **board.text("train.stage"))
        dataset_dir = gr.Textbox(value=default_dataset_dir(), scale=1, **board.text("train.dataset_dir"))
        dataset = gr.Dropdown(
            choices=dataset_choices(default_dataset_dir()), multiselect=True, scale=3, **board.text("train.dataset")
        )
        preview_dataset = button(board, "train.preview_dataset", scale=1)
    dataset_preview = gr.JSON(visible=False, **board.text("train.dataset_preview"))
    follow_dataset_dir(board, dataset_dir, dataset)

    def show_rows(directory: str, names: list[str], lang: str) -> Any:
        try:
            board.roots.check("dataset_dir", directory)
            return gr.update(value=preview_rows(directory, names or []), visible=True)
        except LfRayError as err:
            return gr.update(value={"error": message("err_dataset", lang, error=str(err))}, visible=True)

    preview_dataset.click(show_rows, [dataset_dir, dataset, board["top.lang"]], [dataset_preview])
    return {
        "train.stage": stage,
        "train.dataset_dir": dataset_dir,
        "train.dataset": dataset,
        "train.preview_dataset": preview_dataset,
        "train.dataset_preview": dataset_preview,
    }


def _hyperparameter_rows(board: Board) -> dict[str, Any]:
    t = board.text
    with gr.Row():
        elems = {
            "train.learning_rate": gr.Textbox(value="5e-5", **t("train.learning_rate")),
            "train.num_train_epochs": gr.Textbox(value="3.0", **t("train.num_train_epochs")),
            "train.max_steps": gr.Number(value=-1, precision=0, **t("train.max_steps")),
            "train.max_samples": gr.Textbox(value="", **t("train.max_samples")),
            "train.compute_type": gr.Dropdown(choices=list(COMPUTE_TYPES), value="fp32", **t("train.compute_type")),
        }
    with gr.Row():
        elems |= {
            "train.cutoff_len": gr.Number(value=1024, precision=0, minimum=4, **t("train.cutoff_len")),
            "train.per_device_train_batch_size": gr.Number(
                value=2, precision=0, minimum=1, **t("train.per_device_train_batch_size")
            ),
            "train.gradient_accumulation_steps": gr.Number(
                value=8, precision=0, minimum=1, **t("train.gradient_accumulation_steps")
            ),
            "train.lr_scheduler_type": gr.Dropdown(choices=SCHEDULERS, value="cosine", **t("train.lr_scheduler_type")),
            "train.val_size": gr.Number(value=0, minimum=0, maximum=0.99, **t("train.val_size")),
        }
    with gr.Row():
        elems |= {
            "train.logging_steps": gr.Number(value=5, precision=0, minimum=1, **t("train.logging_steps")),
            "train.save_steps": gr.Number(value=100, precision=0, minimum=1, **t("train.save_steps")),
            "train.warmup_steps": gr.Number(value=0, precision=0, minimum=0, **t("train.warmup_steps")),
            "train.packing": gr.Checkbox(value=False, **t("train.packing")),
            "train.extra_args": gr.Textbox(value="", **t("train.extra_args")),
        }
    return elems


def _method_accordions(board: Board) -> dict[str, Any]:
    t = board.text
    elems: dict[str, Any] = {}
    with gr.Accordion(open=False, **t("train.lora_tab")) as lora_tab, gr.Row():
        elems |= {
            "train.lora_rank": gr.Number(value=8, precision=0, minimum=1, **t("train.lora_rank")),
            "train.lora_alpha": gr.Number(value=None, precision=0, minimum=1, **t("train.lora_alpha")),
            "train.lora_dropout": gr.Number(value=0.0, minimum=0, maximum=1, **t("train.lora_dropout")),
            "train.lora_target": gr.Textbox(value="all", **t("train.lora_target")),
        }
    with gr.Accordion(open=False, **t("train.freeze_tab")) as freeze_tab, gr.Row():
        elems |= {
            "train.freeze_trainable_layers": gr.Number(value=2, precision=0, **t("train.freeze_trainable_layers")),
            "train.freeze_trainable_modules": gr.Textbox(value="all", **t("train.freeze_trainable_modules")),
        }
    with gr.Accordion(open=False, **t("train.rlhf_tab")) as rlhf_tab, gr.Row():
        elems |= {
            "train.pref_beta": gr.Number(value=0.1, minimum=0, **t("train.pref_beta")),
            "train.pref_loss": gr.Dropdown(choices=PREF_LOSSES, value="sigmoid", **t("train.pref_loss")),
            "train.ppo_score_norm": gr.Checkbox(value=False, **t("train.ppo_score_norm")),
            "train.ppo_whiten_rewards": gr.Checkbox(value=False, **t("train.ppo_whiten_rewards")),
        }
    with gr.Accordion(open=False, **t("train.grpo_tab")) as grpo_tab, gr.Row():
        elems |= {
            "train.reward_funcs": gr.Textbox(value="numeric_match", **t("train.reward_funcs")),
            "train.reward_model": gr.Textbox(value="", **t("train.reward_model")),
            "train.num_generations": gr.Number(value=8, precision=0, minimum=2, **t("train.num_generations")),
            "train.max_completion_length": gr.Number(
                value=256, precision=0, minimum=1, **t("train.max_completion_length")
            ),
            "train.grpo_beta": gr.Number(value=0.0, minimum=0, **t("train.grpo_beta")),
        }
    with gr.Accordion(open=False, **t("train.deepspeed_tab")) as deepspeed_tab, gr.Row():
        elems |= {
            "train.deepspeed_stage": gr.Dropdown(
                choices=list(DEEPSPEED_STAGES), value="none", **t("train.deepspeed_stage")
            ),
            "train.ds_offload": gr.Checkbox(value=False, **t("train.ds_offload")),
        }
    with gr.Accordion(open=True, **t("train.ray_tab")) as ray_tab, gr.Row():
        elems |= {
            "train.ray_num_workers": gr.Number(value=1, precision=0, minimum=1, **t("train.ray_num_workers")),
            "train.resources_per_worker": gr.Textbox(value="", **t("train.resources_per_worker")),
            "train.ray_storage_path": gr.Textbox(value="", **t("train.ray_storage_path")),
        }
    accordions = {"lora_tab": lora_tab, "freeze_tab": freeze_tab, "rlhf_tab": rlhf_tab, "grpo_tab": grpo_tab}
    accordions |= {"deepspeed_tab": deepspeed_tab, "ray_tab": ray_tab}
    return elems | {f"train.{name}": accordion for name, accordion in accordions.items()}


def create_train_tab(board: Board) -> dict[str, Any]:
    elems = _data_rows(board) | _hyperparameter_rows(board) | _method_accordions(board)
    with gr.Row():
        elems["train.output_dir"] = gr.Textbox(value="", scale=3, **board.text("train.output_dir"))
        elems["train.config_path"] = gr.Textbox(value="", scale=2, **board.text("train.config_path"))
    with gr.Row():
        for name in ("preview_btn", "save_btn", "load_btn", "start_btn", "abort_btn"):
            elems[f"train.{name}"] = button(
                board, f"train.{name}", variant="primary" if name == "start_btn" else "secondary"
            )
    with gr.Row():
        with gr.Column(scale=3):
            elems["train.progress"] = gr.HTML(**board.text("train.progress"))
            elems["train.output_box"] = gr.Textbox(
                lines=12, max_lines=12, interactive=False, **board.text("train.output_box")
            )
        elems["train.loss_viewer"] = gr.Plot(scale=2, **board.text("train.loss_viewer"))
    board.add(elems)
    _wire_train_events(board)
    return elems


def _wire_train_events(board: Board) -> None:
    form, runner = board.form(), board.runner
    outputs = [board["train.output_box"], board["train.progress"], board["train.loss_viewer"]]

    def preview(values: dict) -> str:
        return runner.preview("train", board.state(values))

    def start(values: dict):
        for update in runner.start("train", board.state(values)):
            yield update.text, update.progress, update.figure

    def save(values: dict) -> str:
        state = board.state(values)
        lang = state.get("top.lang") or "en"
        try:
            path = save_board_config(board.config_dir, state.get("train.config_path") or "", state)
        except LfRayError as err:
            return message("err_config_name", lang, error=str(err))
        return message("info_saved", lang, path=path)

    def load(values: dict) -> dict:
        state = board.state(values)
        lang = state.get("top.lang") or "en"
        name = state.get("train.config_path") or ""
        try:
            loaded = load_board_config(board.config_dir, name)
        except LfRayError as err:
            return {board["train.output_box"]: message("err_config_name", lang, error=str(err))}
        note = message("info_loaded", lang, path=Path(board.config_dir) / f"{name.removesuffix('.yaml')}.yaml")
        return board.form_updates(loaded) | {board["train.output_box"]: note}

    def resume(values: dict) -> dict:
        state = board.state(values)
        output_dir = state.get("train.output_dir")
        saved = run_form(output_dir) if output_dir and board.roots.allows(output_dir) else None
        if not saved:
            return {}
        lang = state.get("top.lang") or "en"
        note = message("info_resume", lang, path=state["train.output_dir"])
        return board.form_updates(saved) | {board["train.output_box"]: note}

    every = list(board.elements.values())
    board["train.preview_btn"].click(preview, form, [board["train.output_box"]], queue=False)
    board["train.start_btn"].click(start, form, outputs)
    board["train.abort_btn"].click(runner.abort, queue=False)
    board["train.save_btn"].click(save, form, [board["train.output_box"]], queue=False)
    board["train.load_btn"].click(load, form, every, queue=False)
    board["train.output_dir"].blur(resume, form, every, queue=False)
    follow_model(board, board["train.output_dir"], "train")
