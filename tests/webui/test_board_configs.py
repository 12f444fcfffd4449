"""Save / Load arguments: a round trip without the volatile fields, names that cannot escape the folder, and
the form a launch leaves in its output directory."""

from __future__ import annotations

import pytest
import yaml

from lf_ray.errors import ConfigError
from lf_ray.webui.board_configs import (
    RUN_FORM_NAME,
    config_file,
    load_board_config,
    run_form,
    save_board_config,
    save_run_form,
)


def test_saved_arguments_round_trip_without_volatile_fields(tmp_path, train_state):
    state = {**train_state, "top.lang": "ja", "train.config_path": "my_lora", "eval.dataset": ["x"]}
    path = save_board_config(tmp_path / "configs", "my_lora", state)
    assert path == (tmp_path / "configs" / "my_lora.yaml").resolve()
    saved = yaml.safe_load(path.read_text())
    for volatile in ("top.lang", "top.model_name_or_path", "train.output_dir", "train.config_path"):
        assert volatile not in saved
    assert "eval.dataset" not in saved  # Save/Load keep the top bar and the Train tab only
    loaded = load_board_config(tmp_path / "configs", "my_lora.yaml")
    expected = {k: v for k, v in state.items() if k.startswith(("top.", "train.")) and k in saved}
    assert (
        loaded == expected
        and loaded["train.learning_rate"] == "1e-4"
        and loaded["train.dataset"]
        == [
            "identity",
            "alpaca_en_demo",
        ]
    )


@pytest.mark.parametrize("name", ["../outside", "../../etc/passwd", "/etc/passwd", "a/b", "..", ".", "", "x\\..\\y"])
def test_names_that_would_leave_the_config_folder_are_refused(tmp_path, train_state, name):
    with pytest.raises(ConfigError, match=r"config name|no config name"):
        save_board_config(tmp_path / "configs", name, train_state)
    with pytest.raises(ConfigError):
        load_board_config(tmp_path / "configs", name)
    assert not (tmp_path / "outside.yaml").exists()


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "secret.yaml").write_text("top.lang: en\n")
    (tmp_path / "configs" / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(ConfigError, match="outside"):
        config_file(tmp_path / "configs", "link")


def test_loading_a_missing_or_broken_config_names_the_file(tmp_path, train_state):
    save_board_config(tmp_path, "kept", train_state)
    with pytest.raises(ConfigError, match=r"no saved config `gone`.*saved: kept"):
        load_board_config(tmp_path, "gone")
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not valid YAML"):
        load_board_config(tmp_path, "broken")


def test_the_run_form_brings_back_everything_but_the_language(tmp_path, train_state):
    out = tmp_path / "run"
    assert run_form(out) is None and run_form("") is None
    save_run_form(out, {**train_state, "top.lang": "ko"})
    assert (out / RUN_FORM_NAME).is_file()
    restored = run_form(out)
    assert "top.lang" not in restored
    assert restored["top.model_name_or_path"] == "builtin:tiny-llama"  # a resume keeps the model and output dir
    assert restored["train.output_dir"] == train_state["train.output_dir"]
