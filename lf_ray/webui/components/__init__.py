"""One module per board tab; each `create_*` builds its elements, wires their events and returns them by id."""

from __future__ import annotations

from typing import Any

import gradio as gr

from lf_ray.webui.board import Board, dom_id


def button(board: Board, elem_id: str, **kwargs: Any) -> gr.Button:
    return gr.Button(board.text(elem_id)["label"], elem_id=dom_id(elem_id), **kwargs)
