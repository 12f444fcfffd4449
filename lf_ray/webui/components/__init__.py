"""One module per board tab; each `create_*` builds its elements, wires their events and returns them by id."""

from __future__ import annotations

from typing import Any

import gradio as gr

from lf_ray.webui.board import Board, dom_id
from lf_ray.webui.board_args import Command, dataset_choices, default_output_dir


def button(board: Board, elem_id: str, **kwargs: Any) -> gr.Button:
    return gr.Button(board.text(elem_id)["label"], elem_id=dom_id(elem_id), **kwargs)


def follow_dataset_dir(board: Board, dataset_dir: gr.Textbox, dataset: gr.Dropdown) -> None:
    """Typing another data dir lists that folder's datasets (none outside the board's allowed roots)."""

    def choices(directory: str) -> Any:
        return gr.update(choices=dataset_choices(directory) if board.roots.allows(directory) else [], value=[])

    dataset_dir.input(choices, [dataset_dir], [dataset])


def follow_model(board: Board, output_dir: gr.Textbox, command: Command) -> None:
    """Choosing a model or method proposes a fresh `saves/<model>/<method>/<command>_<time>` output dir."""

    def fresh(model: str | None, finetuning_type: str) -> str:
        return default_output_dir(str(board.save_dir), model or "", finetuning_type, command) if model else ""

    for trigger in ("top.model_name_or_path", "top.finetuning_type"):
        board[trigger].input(fresh, [board["top.model_name_or_path"], board["top.finetuning_type"]], [output_dir])
