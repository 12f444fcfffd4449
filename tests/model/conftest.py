"""A throwaway LF_RAY_HOME for every test in tests/model, so builtin models are built once and ~/.cache stays clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_ray.constants import ENV_HOME


@pytest.fixture(scope="package", autouse=True)
def lf_ray_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("lf_ray_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_HOME, str(home))
        yield home
