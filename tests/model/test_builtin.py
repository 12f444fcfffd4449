"""The builtin table and how models are materialized: atomically, once, identically on every build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lf_ray import __version__
from lf_ray.constants import ENV_HOME
from lf_ray.errors import ModelError
from lf_ray.model import builtin
from lf_ray.model.builtin import (
    BUILTIN_MODELS,
    MARKER_NAME,
    BuiltinModel,
    build_builtin_model,
    builtin_cache_dir,
    materialize_builtin,
    read_marker,
)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_table_names_templates_and_families() -> None:
    assert {n: (m.family, m.template) for n, m in BUILTIN_MODELS.items()} == {
        "tiny-llama": ("llama", "llama3"),
        "tiny-qwen": ("qwen2", "qwen"),
        "smollm2-135m": ("llama", "smollm2"),
    }


def test_unknown_builtin_lists_the_available_names() -> None:
    with pytest.raises(ModelError) as err:
        materialize_builtin("builtin:tiny-lama")
    message = str(err.value)
    assert "builtin:tiny-lama" in message
    assert "Did you mean builtin:tiny-llama?" in message
    assert "builtin:tiny-llama, builtin:tiny-qwen, builtin:smollm2-135m" in message


def test_materialize_writes_marker_last_and_leaves_no_tmp(lf_ray_home: Path) -> None:
    path = materialize_builtin("builtin:tiny-qwen")
    assert path == lf_ray_home / "models" / "tiny-qwen" == builtin_cache_dir("tiny-qwen")
    marker = json.loads((path / MARKER_NAME).read_text())
    assert marker["name"] == "tiny-qwen"
    assert marker["lf_ray_version"] == __version__
    assert set(marker["files"]) == {
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert _leftovers(path.parent) == []
    # Second call reuses the folder as it is.
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert materialize_builtin("tiny-qwen") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime


def test_builds_are_byte_identical_across_processes(tmp_path: Path) -> None:
    """Two processes (different hash seeds, thread counts) racing on one cache, plus a build to --out."""
    script = (
        "import sys; from pathlib import Path; from lf_ray.model.builtin import *\n"
        "print(materialize_builtin('tiny-qwen'))\n"
        "if sys.argv[1] == 'out': build_builtin_model('tiny-llama', Path(sys.argv[2]))\n"
    )
    env = {**os.environ, ENV_HOME: str(tmp_path / "home"), "PYTHONHASHSEED": "random"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, mode, str(tmp_path / "out")],
            env={**env, "RAYON_NUM_THREADS": threads},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, threads in (("out", "1"), ("race", "2"))
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    raced = tmp_path / "home" / "models" / "tiny-qwen"
    assert {out.strip().splitlines()[-1] for out, _ in outputs} == {str(raced)}
    assert _leftovers(raced.parent) == []

    for name, other in (("tiny-qwen", raced), ("tiny-llama", tmp_path / "out")):
        here = read_marker(materialize_builtin(name))
        there = read_marker(other)
        assert here is not None and there is not None
        assert here["files"] == there["files"]


@pytest.fixture
def fake_builtin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    """A builtin whose build writes one small file, counting its builds, in a fresh LF_RAY_HOME."""
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "home"))
    calls = {"n": 0}

    def build(out_dir: Path) -> None:
        calls["n"] += 1
        (out_dir / "weights.txt").write_text(f"build {calls['n']}")

    entry = BuiltinModel(name="fake", family="llama", template="llama3", description="test", build=build)
    monkeypatch.setitem(BUILTIN_MODELS, "fake", entry)
    return calls


def test_racing_builder_keeps_the_winner(fake_builtin: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    target = builtin_cache_dir("fake")

    def theirs(out_dir: Path) -> None:
        (out_dir / "weights.txt").write_text("theirs")

    def ours(out_dir: Path) -> None:
        (out_dir / "weights.txt").write_text("ours")
        # Meanwhile another process finishes its build of the same model and renames it into place.
        builtin._build_atomically(BuiltinModel("fake", "llama", "llama3", "test", theirs), target, replace=False)

    monkeypatch.setitem(BUILTIN_MODELS, "fake", BuiltinModel("fake", "llama", "llama3", "test", ours))
    assert materialize_builtin("fake") == target
    assert (target / "weights.txt").read_text() == "theirs"
    assert read_marker(target) is not None
    assert _leftovers(target.parent) == []


def test_failed_build_leaves_nothing(fake_builtin: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(out_dir: Path) -> None:
        (out_dir / "half.bin").write_bytes(b"x")
        raise RuntimeError("disk full")

    monkeypatch.setitem(BUILTIN_MODELS, "fake", BuiltinModel("fake", "llama", "llama3", "test", broken))
    with pytest.raises(RuntimeError, match="disk full"):
        materialize_builtin("fake")
    target = builtin_cache_dir("fake")
    assert not target.exists()
    assert _leftovers(target.parent) == []


def test_incomplete_or_stale_folder_is_rebuilt(fake_builtin: dict[str, int]) -> None:
    target = builtin_cache_dir("fake")
    target.mkdir(parents=True)
    (target / "junk").write_text("left by a crash")
    materialize_builtin("fake")
    assert sorted(p.name for p in target.iterdir()) == [MARKER_NAME, "weights.txt"]

    marker = json.loads((target / MARKER_NAME).read_text())
    (target / MARKER_NAME).write_text(json.dumps({**marker, "lf_ray_version": "0.0.0-old"}))
    materialize_builtin("fake")
    assert fake_builtin["n"] == 2
    (target / "weights.txt").write_text("truncated")  # size no longer matches the marker
    materialize_builtin("fake")
    assert fake_builtin["n"] == 3
    materialize_builtin("fake", force=True)
    assert fake_builtin["n"] == 4
    assert (target / "weights.txt").read_text() == "build 4"
    assert _leftovers(target.parent) == []


def test_build_builtin_model_refuses_a_non_empty_out_dir(fake_builtin: dict[str, int], tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="not empty"):
        build_builtin_model("builtin:fake", tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"

    (tmp_path / "empty").mkdir()
    assert build_builtin_model("fake", tmp_path / "empty") == tmp_path / "empty"
    assert read_marker(tmp_path / "empty")["template"] == "llama3"
    assert build_builtin_model("fake", tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert _leftovers(tmp_path) == []
