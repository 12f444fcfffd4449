"""The bar above the tabs: language, model, finetuning method, checkpoints, template, Ray cluster address."""

from __future__ import annotations

from typing import Any

import gradio as gr

from lf_ray.data.templates import template_table
from lf_ray.model.builtin import BUILTIN_MODELS
from lf_ray.webui.board import Board
from lf_ray.webui.board_args import list_checkpoints
from lf_ray.webui.components import button
from lf_ray.webui.locales import languages

FINETUNING_TYPES = ["lora", "freeze", "full"]


def builtin_template(model: str | None) -> str:
    """The template a builtin model was made with ("" for other models: the user picks)."""
    entry = BUILTIN_MODELS.get((model or "").removeprefix("builtin:"))
    return entry.template if entry and (model or "").startswith("builtin:") else ""


def create_top(board: Board) -> dict[str, Any]:
    with gr.Row():
        lang = gr.Dropdown(choices=languages(), value=board.lang, scale=1, **board.text("top.lang"))
        model = gr.Dropdown(
            choices=[f"builtin:{name}" for name in BUILTIN_MODELS],
            value=None,
            allow_custom_value=True,
            scale=3,
            **board.text("top.model_name_or_path"),
        )
        finetuning_type = gr.Dropdown(
            choices=FINETUNING_TYPES, value="lora", scale=1, **board.text("top.finetuning_type")
        )
        template = gr.Dropdown(choices=["", *sorted(template_table())], value="", scale=1, **board.text("top.template"))
    with gr.Row():
        adapter_path = gr.Dropdown(
            choices=[], value=[], multiselect=True, allow_custom_value=True, scale=4, **board.text("top.adapter_path")
        )
        refresh = button(board, "top.refresh_adapters", scale=1)
        ray_address = gr.Textbox(value="", scale=3, **board.text("top.ray_address"))

    def checkpoints(model_value: str | None, finetuning_value: str) -> Any:
        return gr.update(choices=list_checkpoints(board.save_dir, model_value, finetuning_value), value=[])

    model.input(builtin_template, [model], [template], queue=False)
    model.input(checkpoints, [model, finetuning_type], [adapter_path], queue=False)
    finetuning_type.input(checkpoints, [model, finetuning_type], [adapter_path], queue=False)
    refresh.click(
        lambda m, f: gr.update(choices=list_checkpoints(board.save_dir, m, f)),
        [model, finetuning_type],
        [adapter_path],
        queue=False,
    )
    return {
        "top.lang": lang,
        "top.model_name_or_path": model,
        "top.finetuning_type": finetuning_type,
        "top.template": template,
        "top.adapter_path": adapter_path,
        "top.refresh_adapters": refresh,
        "top.ray_address": ray_address,
    }
