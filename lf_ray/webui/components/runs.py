"""The Runs tab: the pipeline runs of a storage folder (the run store of `lf-ray runs`), each run's steps,
and links to its MLflow run and to the Ray dashboard."""

from __future__ import annotations

from typing import Any

import gradio as gr

from lf_ray.errors import LfRayError
from lf_ray.webui.board import Board
from lf_ray.webui.components import button
from lf_ray.webui.run_views import run_details, runs_table

RUN_COLUMNS = ["run", "pipeline", "status", "started", "seconds", "steps"]


def create_runs_tab(board: Board) -> dict[str, Any]:
    t = board.text
    with gr.Row():
        storage = gr.Textbox(value="saves/pipelines", scale=3, **t("runs.storage_path"))
        dashboard = gr.Textbox(value="http://127.0.0.1:8265", scale=2, **t("runs.ray_dashboard"))
        refresh = button(board, "runs.refresh_btn", scale=1)
    table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, **t("runs.runs_table"))
    run_id = gr.Dropdown(choices=[], allow_custom_value=True, **t("runs.run_id"))
    details = gr.Markdown(**t("runs.run_details"))
    elems = {
        "runs.storage_path": storage,
        "runs.ray_dashboard": dashboard,
        "runs.refresh_btn": refresh,
        "runs.runs_table": table,
        "runs.run_id": run_id,
        "runs.run_details": details,
    }
    board.add(elems)

    def refresh_runs(where: str):
        try:
            board.roots.check("storage_path", where or ".")
        except LfRayError as err:
            return [], gr.update(choices=[], value=None), str(err)
        rows = runs_table(where)
        ids = [row[0] for row in rows]
        return rows, gr.update(choices=ids, value=ids[0] if ids else None), gr.update()

    def show_run(where: str, run: str | None, dashboard_url: str, lang: str) -> str:
        try:
            board.roots.check("storage_path", where or ".")
        except LfRayError as err:
            return str(err)
        return run_details(where, run, dashboard_url, lang)

    refresh.click(refresh_runs, [storage], [table, run_id, details], queue=False)
    run_id.change(show_run, [storage, run_id, dashboard, board["top.lang"]], [details], queue=False)
    return elems
