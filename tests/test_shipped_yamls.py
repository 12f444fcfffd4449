"""Every shipped YAML opens with the command that runs it, parses, validates and dry-runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_ray.config import prepare_config
from lf_ray.data.preprocess import plan_preprocess

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted([*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("lf_ray/assets/*.yaml")])


def test_there_are_shipped_yamls():
    assert len(SHIPPED) >= 6


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_yaml_opens_with_its_command_and_plans(path, tmp_path):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# lf-ray "), f"{path} must open with the command that runs it"
    cfg = prepare_config(str(path), [f"output_dir={tmp_path / 'out'}"])
    plan = plan_preprocess(cfg)
    assert plan.path == tmp_path / "out" / "tokenized" and not plan.cached
    assert not (tmp_path / "out").exists()  # planning touches nothing
