"""Property-based fuzzing of a running lf-ray API from its own OpenAPI schema (schemathesis + Hypothesis).

`fuzz_api(root_url, key, examples=N)` loads `/openapi.json`, generates N cases per generation mode that fit the
schema (positive) and N that break it (negative), over every operation, sends each over real HTTP with the API
key, and counts what came back. The API holds when no answer is a 5xx and every error carries OpenAI's error body
(`{"error": {"message", "type", ...}}`). Used by `tests/serve/test_serve_http.py` and `benchmarks/reliability.py`.

Positive chat and completion cases are bounded so that fuzzing stays cheap on a CPU: they ask for the served model
(random names would only ever meet the 404 path, which negative cases reach too), at most 4 tokens and 2 choices.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from typing import Any

GENERATING_PATHS = ("/v1/chat/completions", "/v1/completions")
MAX_TOKENS, MAX_CHOICES = 4, 2


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    """`METHOD path request-body -> status: response-body` of every 5xx."""
    bodies_not_openai: list[str] = field(default_factory=list)
    """The same for every 4xx whose body is not OpenAI's error body."""

    @property
    def held(self) -> bool:
        return self.cases > 0 and not self.server_errors and not self.bodies_not_openai


def is_openai_error(content: bytes) -> bool:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)


def _bounded(case: Any, model: str) -> None:
    """A positive generating case asks the served model for a few tokens (see the module docstring)."""
    if case.path in GENERATING_PATHS and isinstance(case.body, dict):
        case.body["model"] = model
        case.body["max_tokens"] = min(case.body.get("max_tokens") or MAX_TOKENS, MAX_TOKENS)
        case.body.pop("max_completion_tokens", None)
        case.body["n"] = min(case.body.get("n") or 1, MAX_CHOICES)


def fuzz_api(root_url: str, key: str, *, model: str, examples: int, seed: int = 0) -> FuzzReport:
    """`examples` positive and `examples` negative cases, drawn over all operations of the API at `root_url`."""
    import hypothesis
    import requests
    import schemathesis
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{root_url}/openapi.json")
    report = FuzzReport()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {key}"}

    def send(case: Any, mode: GenerationMode) -> None:
        if mode is GenerationMode.POSITIVE:
            _bounded(case, model)
        response = case.call(base_url=root_url, session=session, headers=headers, timeout=120)
        report.cases += 1
        report.statuses[response.status_code] += 1
        sent = json.dumps(case.body, default=str) if isinstance(case.body, (dict, list)) else repr(case.body)
        answer = f"{response.status_code}: {response.content[:300]!r}"
        where = f"{case.method} {case.formatted_path} {sent[:300]} -> {answer}"
        if response.status_code >= 500:
            report.server_errors.append(where)
        elif response.status_code >= 400 and not is_openai_error(response.content):
            report.bodies_not_openai.append(where)

    def fuzz(mode: GenerationMode) -> None:
        @hypothesis.seed(seed)
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[hypothesis.Phase.generate],  # every case is counted; no shrinking of a failure
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        @hypothesis.given(case=schema.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            send(case, mode)

        run()

    fuzz(GenerationMode.POSITIVE)
    fuzz(GenerationMode.NEGATIVE)
    return report
