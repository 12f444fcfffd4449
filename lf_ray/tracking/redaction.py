"""Config keys that hold credentials: a tracker logs the config with these values masked.

LLaMA-Factory hands its whole argument set to W&B and SwanLab, `swanlab_api_key` included; lf-ray logs `***`
in its place to MLflow (run and sweep params) and to SwanLab (the run's config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SECRET_KEYS = frozenset({"swanlab_api_key", "swanlab_lark_secret", "swanlab_lark_webhook_url"})
"""The Lark webhook URL carries the bot's token: whoever has it can post to the chat."""
REDACTED = "***"


def without_secrets(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with every credential that is set replaced by `***`."""
    return {key: REDACTED if key in SECRET_KEYS and value is not None else value for key, value in values.items()}
