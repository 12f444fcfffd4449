"""The Chat tab: load the top bar's model (base + adapter, or an export) and chat with streamed answers,
a system prompt, generation settings and tools; `lf-ray webchat` shows this tab alone."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from lf_ray.webui.board import Board
from lf_ray.webui.board_args import model_args
from lf_ray.webui.components import button
from lf_ray.webui.locales import message
from lf_ray.webui.web_chat import GenerationSettings, parse_tools


def message_text(content: Any) -> str:
    """A Chatbot message's content as plain text (Gradio may hand back a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, list):
        return "".join(message_text(part) for part in content)
    return "" if content is None else str(content)


def create_chat_tab(board: Board, *, preloaded: str | None = None) -> dict[str, Any]:
    t = board.text
    with gr.Row():
        load_btn = button(board, "chat.load_btn", variant="primary")
        unload_btn = button(board, "chat.unload_btn")
        info_box = gr.Textbox(value=preloaded or "", interactive=False, scale=3, **t("chat.info_box"))
    with gr.Row():
        with gr.Column(scale=4):
            chatbot = gr.Chatbot(height=360, **t("chat.chatbot"))
            query = gr.Textbox(lines=2, **t("chat.query"))
            with gr.Row():
                submit_btn = button(board, "chat.submit_btn", variant="primary")
                clear_btn = button(board, "chat.clear_btn")
        with gr.Column(scale=1):
            system = gr.Textbox(lines=3, **t("chat.system"))
            tools = gr.Textbox(lines=3, **t("chat.tools"))
            max_new_tokens = gr.Slider(8, 4096, value=256, step=1, **t("chat.max_new_tokens"))
            top_p = gr.Slider(0.01, 1.0, value=0.7, step=0.01, **t("chat.top_p"))
            temperature = gr.Slider(0.01, 1.5, value=0.95, step=0.01, **t("chat.temperature"))
    elems = {
        "chat.load_btn": load_btn,
        "chat.unload_btn": unload_btn,
        "chat.info_box": info_box,
        "chat.chatbot": chatbot,
        "chat.query": query,
        "chat.submit_btn": submit_btn,
        "chat.clear_btn": clear_btn,
        "chat.system": system,
        "chat.tools": tools,
        "chat.max_new_tokens": max_new_tokens,
        "chat.top_p": top_p,
        "chat.temperature": temperature,
    }
    board.add(elems)
    _wire_chat_events(board, elems)
    return elems


def _wire_chat_events(board: Board, elems: dict[str, Any]) -> None:
    chat, lang = board.chat, board["top.lang"]

    def load(values: dict):
        state = board.state(values)
        language = state.get("top.lang") or "en"
        if not state.get("top.model_name_or_path"):
            yield message("err_no_model", language)
            return
        yield message("info_loading_model", language)
        try:
            board.roots.check_config(model_args(state))
            name = chat.load(state)
        except Exception as err:  # a bad path, a broken adapter, a template mismatch: say it, keep the board up
            yield message("err_chat_load", language, error=f"{type(err).__name__}: {err}")
            return
        yield message("info_model_loaded", language, model=name)

    def unload(language: str) -> str:
        chat.unload()
        return message("info_model_unloaded", language)

    def respond(history, query, system, tools_text, max_new_tokens, top_p, temperature, language):
        history = [{"role": m["role"], "content": message_text(m["content"])} for m in history or []]
        if not chat.loaded:
            yield history, query, message("err_no_chat_model", language)
            return
        try:
            tools = parse_tools(tools_text)
        except (ValueError, json.JSONDecodeError) as err:
            yield history, query, message("err_json", language, key="tools", error=str(err))
            return
        messages = [*history, {"role": "user", "content": query}]
        settings = GenerationSettings(int(max_new_tokens), float(top_p), float(temperature))
        try:
            for text in chat.stream(messages, system=system or None, tools=tools, settings=settings):
                yield [*messages, {"role": "assistant", "content": text}], "", gr.update()
        except Exception as err:  # an over-long history or a bad tools list: show it, keep the history
            yield history, query, message("err_chat", language, error=f"{type(err).__name__}: {err}")

    inputs = [elems["chat.chatbot"], elems["chat.query"], elems["chat.system"], elems["chat.tools"]]
    inputs += [elems["chat.max_new_tokens"], elems["chat.top_p"], elems["chat.temperature"], lang]
    outputs = [elems["chat.chatbot"], elems["chat.query"], elems["chat.info_box"]]
    elems["chat.load_btn"].click(load, board.form(), [elems["chat.info_box"]])
    elems["chat.unload_btn"].click(unload, [lang], [elems["chat.info_box"]], queue=False)
    elems["chat.submit_btn"].click(respond, inputs, outputs)
    elems["chat.query"].submit(respond, inputs, outputs)
    elems["chat.clear_btn"].click(lambda: ([], ""), outputs=[elems["chat.chatbot"], elems["chat.query"]], queue=False)
