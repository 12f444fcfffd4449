"""Errors a request can earn, each with its HTTP status and OpenAI's error body. They pickle across Ray actors,
so the model replica raises them and the HTTP ingress answers with the right status."""

from __future__ import annotations

from typing import Any

from lf_ray.errors import LfRayError


class ApiError(LfRayError):
    """A request the server refuses; `body()` is OpenAI's `{"error": {...}}`."""

    status: int = 400
    error_type: str = "invalid_request_error"

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.param, self.code))

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


class BadRequest(ApiError):
    """400: the request is well-formed JSON of the right shape but asks for something impossible."""


class InvalidApiKey(ApiError):
    status = 401

    def __init__(self, message: str = "", param: str | None = None, code: str | None = "invalid_api_key") -> None:
        super().__init__(
            message
            or "Incorrect or missing API key: this server requires `Authorization: Bearer <key>` with the key its "
            "API_KEY environment variable holds. Fix: pass that key (OpenAI client: api_key=...).",
            param,
            code,
        )


class ModelNotFound(ApiError):
    status = 404


class NotAllowed(ApiError):
    """405: the served model cannot do what the route asks (chat with a reward model, scores with a chat model)."""

    status = 405


class SchemaError(ApiError):
    """422: the JSON body does not match the OpenAI schema (a missing field, a wrong type or range)."""

    status = 422


class RequestTooLarge(ApiError):
    status = 413


class Overloaded(ApiError):
    status = 503
    error_type = "server_error"


class InternalError(ApiError):
    status = 500
    error_type = "server_error"


def unknown_model(model: str, available: list[str]) -> ModelNotFound:
    return ModelNotFound(
        f"The model `{model}` does not exist on this server. Fix: use one of {', '.join(available)} "
        "(GET /v1/models lists them).",
        param="model",
        code="model_not_found",
    )
