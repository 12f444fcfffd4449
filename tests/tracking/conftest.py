"""The stage tests' tokenized demo rows (`encoded`), which the trackers' training runs train on."""

from __future__ import annotations

from tests.train.conftest import encoded

__all__ = ["encoded"]
