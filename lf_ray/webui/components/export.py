"""The Export tab: `lf-ray export` (merge the adapters, write sharded safetensors and the chat template)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from lf_ray.webui.board import Board
from lf_ray.webui.components import button


def create_export_tab(board: Board) -> dict[str, Any]:
    t = board.text
    with gr.Row():
        elems = {
            "export.export_dir": gr.Textbox(value="", scale=3, **t("export.export_dir")),
            "export.export_size": gr.Slider(1, 100, value=5, step=1, scale=1, **t("export.export_size")),
        }
    with gr.Row():
        for name in ("preview_btn", "start_btn", "abort_btn"):
            variant = "primary" if name == "start_btn" else "secondary"
            elems[f"export.{name}"] = button(board, f"export.{name}", variant=variant)
    elems["export.progress"] = gr.HTML(**t("export.progress"))
    elems["export.output_box"] = gr.Textbox(lines=8, max_lines=8, interactive=False, **t("export.output_box"))
    board.add(elems)

    form, runner = board.form(), board.runner
    outputs = [elems["export.output_box"], elems["export.progress"]]

    def start(values: dict):
        for update in runner.start("export", board.state(values)):
            yield update.text, update.progress

    elems["export.preview_btn"].click(
        lambda v: runner.preview("export", board.state(v)), form, outputs[:1], queue=False
    )
    elems["export.start_btn"].click(start, form, outputs)
    elems["export.abort_btn"].click(runner.abort, queue=False)
    return elems
