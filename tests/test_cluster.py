"""What a Ray instance lf-ray starts on this machine inherits from the command's environment."""

from __future__ import annotations

import os

from lf_ray.cluster import LOCAL_TRAIN_HEALTH_CHECK_INTERVAL_S, prepare_local_ray_environment

INTERVAL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def test_a_local_ray_polls_train_workers_often_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv(INTERVAL, raising=False)
    prepare_local_ray_environment()
    assert os.environ[INTERVAL] == LOCAL_TRAIN_HEALTH_CHECK_INTERVAL_S == "0.5"
    monkeypatch.setenv(INTERVAL, "3")
    prepare_local_ray_environment()
    assert os.environ[INTERVAL] == "3"
