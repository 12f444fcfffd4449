"""The locale table is complete: every element the board builds and every message it sends, in all five
languages, with the same {placeholders} as English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lf_ray.webui.app import create_ui, create_web_chat
from lf_ray.webui.board import Board
from lf_ray.webui.locales import element_text, languages, locale_table, message

PLACEHOLDER = re.compile(r"{(\w+)}")
WEBUI = Path(__file__).resolve().parents[2] / "lf_ray" / "webui"


def test_the_five_languages_of_llama_board():
    assert languages() == ["en", "ru", "zh", "ko", "ja"]


@pytest.mark.parametrize("kind", ["elements", "messages"])
def test_every_entry_speaks_every_language_with_the_same_placeholders(kind):
    for key, entry in locale_table()[kind].items():
        assert list(entry) == languages(), f"{kind} `{key}`: has {list(entry)}"
        english = entry["en"]
        for lang in languages():
            if kind == "elements":
                assert set(entry[lang]) == set(english) and entry[lang]["label"], (key, lang)
            else:
                assert set(PLACEHOLDER.findall(entry[lang])) == set(PLACEHOLDER.findall(english)), (key, lang)
                assert entry[lang] != english or lang == "en" or not english.strip(), (key, lang)


def test_every_element_of_the_board_has_words_and_every_entry_is_used():
    board = Board()
    create_ui(board)
    chat_only = Board()
    create_web_chat(chat_only)
    built = set(board.elements) | set(chat_only.elements)
    for elem_id in built:
        for lang in languages():
            assert element_text(elem_id, lang)["label"]
    assert set(locale_table()["elements"]) - built == set()  # no entry left over from a removed element


def test_every_message_the_code_sends_exists_and_every_message_is_sent():
    code = "\n".join(path.read_text() for path in WEBUI.rglob("*.py"))
    sent = set(re.findall(r'message\(\s*"(\w+)"', code)) | set(re.findall(r'Problem\(\s*"(\w+)"', code))
    sent |= set(re.findall(r'"(info_exported|info_finished|err_no_export_dir|err_no_output_dir)"', code))
    assert sent - set(locale_table()["messages"]) == set()
    assert set(locale_table()["messages"]) - sent == set()


def test_messages_are_filled_in_the_chosen_language():
    assert message("err_json", "en", key="tools", error="bad") == (
        "`tools` is not a JSON object (bad). Fix the JSON or empty the box."
    )
    assert message("err_json", "zh", key="tools", error="bad") != message("err_json", "en", key="tools", error="bad")
    assert "`tools`" in message("err_json", "ja", key="tools", error="bad")
