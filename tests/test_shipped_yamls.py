"""Every shipped YAML opens with the command that runs it, and that command dry-runs it cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_ray.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(
    {
        path.resolve()
        for pattern in ("examples/**/*.yaml", "pipelines/*.yaml", "lf_ray/assets/**/*.yaml")
        for path in ROOT.glob(pattern)
    }
)


def opening_command(path: Path) -> list[str]:
    """`# lf-ray sft examples/x.yaml  (comment)` → ["sft", "examples/x.yaml"]."""
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# lf-ray "), f"{path} must open with the command that runs it"
    return first_line.removeprefix("# lf-ray ").split("(")[0].split()


def test_there_are_shipped_yamls():
    assert len(SHIPPED) >= 8
    assert (ROOT / "pipelines" / "demo.yaml").resolve() in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_yaml_dry_runs_with_its_own_command(path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    argv = opening_command(path)
    if len(argv) > 1:
        assert (ROOT / argv[1]).resolve() == path  # the command names this very file
    assert main([*argv, "--dry-run"]) == 0
    assert "# plan:" in capsys.readouterr().out
