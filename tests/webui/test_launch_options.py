"""Where the board listens: flags, else Gradio's own environment variables, else local only."""

from __future__ import annotations

import pytest

from lf_ray.cli import main
from lf_ray.constants import ENV_BOARD_HOST, ENV_BOARD_PORT, ENV_BOARD_SHARE, board_host, board_port, board_share
from lf_ray.errors import ConfigError


def test_flags_then_gradio_variables_then_localhost(monkeypatch):
    for name in (ENV_BOARD_HOST, ENV_BOARD_PORT, ENV_BOARD_SHARE):
        monkeypatch.delenv(name, raising=False)
    assert (board_host(), board_port(), board_share()) == ("127.0.0.1", 7860, False)
    monkeypatch.setenv(ENV_BOARD_HOST, "0.0.0.0")
    monkeypatch.setenv(ENV_BOARD_PORT, "7999")
    monkeypatch.setenv(ENV_BOARD_SHARE, "True")
    assert (board_host(), board_port(), board_share()) == ("0.0.0.0", 7999, True)
    assert (board_host("10.1.2.3"), board_port(8001), board_share(False)) == ("10.1.2.3", 8001, False)
    monkeypatch.setenv(ENV_BOARD_PORT, "seventy")
    with pytest.raises(ConfigError, match="GRADIO_SERVER_PORT='seventy' is not a port number"):
        board_port()


def test_an_unknown_language_is_refused_before_anything_starts(capsys):
    assert main(["webui", "--lang", "fr"]) == 2
    assert "--lang 'fr' is not a board language; use one of en, ru, zh, ko, ja" in capsys.readouterr().err
