"""`lf-ray webui` (the whole board) and `lf-ray webchat` (the Chat tab alone), as Gradio Blocks apps."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gradio as gr

from lf_ray.constants import board_host, board_port, board_share
from lf_ray.webui.board import Board, dom_id
from lf_ray.webui.components.chat import create_chat_tab
from lf_ray.webui.components.evaluate import create_eval_tab
from lf_ray.webui.components.export import create_export_tab
from lf_ray.webui.components.runs import create_runs_tab
from lf_ray.webui.components.top import create_top
from lf_ray.webui.components.train import create_train_tab
from lf_ray.webui.locales import element_text, message

TITLE = "lf-ray board: LLaMA-Factory fine-tuning on Ray"
CSS = ".lfr-progress span { font-family: monospace; }"
_LABEL_ONLY = (gr.Tab, gr.Accordion, gr.Plot, gr.JSON, gr.Dataframe, gr.Chatbot, gr.HTML, gr.Markdown)


def relabel(board: Board, lang: str) -> dict[Any, Any]:
    """Every element's words in `lang`: a button's text, a tab's title, a field's label and info."""
    updates = {}
    for elem_id, elem in board.elements.items():
        words = element_text(elem_id, lang)
        if isinstance(elem, gr.Button):
            updates[elem] = gr.update(value=words["label"])
        elif isinstance(elem, _LABEL_ONLY):
            updates[elem] = gr.update(label=words["label"])
        else:
            updates[elem] = gr.update(label=words["label"], info=words.get("info"))
    return updates


def _demo_banner(board: Board) -> None:
    if board.demo_mode:
        gr.HTML(f'<p id="demo-banner"><b>{message("err_demo", board.lang)}</b></p>')


def create_ui(board: Board) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as app:
        gr.HTML(f"<h2>{TITLE}</h2>")
        _demo_banner(board)
        board.add(create_top(board))
        tabs = {}
        with gr.Tab(id="train", **_tab(board, "tab.train")) as tabs["tab.train"]:
            create_train_tab(board)
        with gr.Tab(id="eval", **_tab(board, "tab.eval")) as tabs["tab.eval"]:
            create_eval_tab(board)
        with gr.Tab(id="chat", **_tab(board, "tab.chat")) as tabs["tab.chat"]:
            create_chat_tab(board)
        with gr.Tab(id="export", **_tab(board, "tab.export")) as tabs["tab.export"]:
            create_export_tab(board)
        with gr.Tab(id="runs", **_tab(board, "tab.runs")) as tabs["tab.runs"]:
            create_runs_tab(board)
        board.add(tabs)
        _wire_language(board)
    return app


def create_web_chat(board: Board, state: dict[str, Any] | None = None) -> gr.Blocks:
    """The Chat tab alone; with `state` (the top bar's values from a config), its model is loaded up front."""
    preloaded = board.chat.load(state) if state else None
    with gr.Blocks(title=TITLE) as app:
        board.add(create_top(board))
        create_chat_tab(board, preloaded=preloaded)
        if state:
            app.load(lambda: [state.get(key) for key in state], outputs=[board[key] for key in state])
        _wire_language(board)
    return app


def _tab(board: Board, elem_id: str) -> dict[str, str]:
    return {"label": element_text(elem_id, board.lang)["label"], "elem_id": dom_id(elem_id)}


def _wire_language(board: Board) -> None:
    elements = list(board.elements.values())
    board["top.lang"].change(lambda lang: relabel(board, lang), [board["top.lang"]], elements, queue=False)


def launch(
    app: gr.Blocks, *, host: str | None, port: int | None, share: bool | None, auth: Callable[[str, str], bool] | None
) -> None:
    """Serve until Ctrl-C, on GRADIO_SERVER_NAME / GRADIO_SERVER_PORT / GRADIO_SHARE unless given, behind the
    login `auth` (`roots.board_auth`) when there is one."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app.queue().launch(
        server_name=board_host(host),
        server_port=board_port(port),
        share=board_share(share),
        auth=auth,
        css=CSS,
        show_error=True,
        ssr_mode=False,
    )
