"""The Evaluate & Predict tab: `lf-ray eval` on the chosen checkpoint; metrics and sample predictions."""

from __future__ import annotations

from typing import Any

import gradio as gr

from lf_ray.webui.board import Board
from lf_ray.webui.board_args import dataset_choices
from lf_ray.webui.components import button, follow_dataset_dir, follow_model
from lf_ray.webui.components.train import default_dataset_dir


def create_eval_tab(board: Board) -> dict[str, Any]:
    t = board.text
    with gr.Row():
        dataset_dir = gr.Textbox(value=default_dataset_dir(), scale=1, **t("eval.dataset_dir"))
        dataset = gr.Dropdown(
            choices=dataset_choices(default_dataset_dir()), multiselect=True, scale=3, **t("eval.dataset")
        )
    with gr.Row():
        elems = {
            "eval.cutoff_len": gr.Number(value=1024, precision=0, minimum=4, **t("eval.cutoff_len")),
            "eval.max_samples": gr.Textbox(value="100", **t("eval.max_samples")),
            "eval.batch_size": gr.Number(value=4, precision=0, minimum=1, **t("eval.batch_size")),
            "eval.predict": gr.Checkbox(value=True, **t("eval.predict")),
        }
    with gr.Row():
        elems |= {
            "eval.max_new_tokens": gr.Number(value=128, precision=0, minimum=1, **t("eval.max_new_tokens")),
            "eval.top_p": gr.Slider(0.01, 1.0, value=0.7, step=0.01, **t("eval.top_p")),
            "eval.temperature": gr.Slider(0.01, 1.5, value=0.95, step=0.01, **t("eval.temperature")),
            "eval.output_dir": gr.Textbox(value="", scale=2, **t("eval.output_dir")),
        }
    with gr.Row():
        for name in ("preview_btn", "start_btn", "abort_btn"):
            elems[f"eval.{name}"] = button(
                board, f"eval.{name}", variant="primary" if name == "start_btn" else "secondary"
            )
    elems["eval.progress"] = gr.HTML(**t("eval.progress"))
    elems["eval.output_box"] = gr.Textbox(lines=8, max_lines=8, interactive=False, **t("eval.output_box"))
    with gr.Row():
        elems["eval.metrics"] = gr.JSON(**t("eval.metrics"))
        elems["eval.predictions"] = gr.JSON(**t("eval.predictions"))
    elems |= {"eval.dataset_dir": dataset_dir, "eval.dataset": dataset}
    board.add(elems)

    follow_dataset_dir(board, dataset_dir, dataset)
    form, runner = board.form(), board.runner
    outputs = [elems[f"eval.{name}"] for name in ("output_box", "progress", "metrics", "predictions")]

    def start(values: dict):
        for update in runner.start("eval", board.state(values)):
            yield update.text, update.progress, update.metrics, update.predictions

    elems["eval.preview_btn"].click(lambda v: runner.preview("eval", board.state(v)), form, outputs[:1], queue=False)
    elems["eval.start_btn"].click(start, form, outputs)
    elems["eval.abort_btn"].click(runner.abort, queue=False)
    follow_model(board, elems["eval.output_dir"], "eval")
    return elems
