"""One exception family. A message says what was wrong, where (file, row, key) and how to fix it."""

from __future__ import annotations


class LfRayError(Exception):
    """Base of every error lf-ray raises on purpose; the CLI prints it without a traceback.

    Only the message is stored, so instances pickle across Ray workers unchanged.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self):
        return (type(self), (self.message,))

    def __str__(self) -> str:
        return self.message


class ConfigError(LfRayError):
    """A config file or a `key=value` override is invalid."""


class DataError(LfRayError):
    """A dataset, its registry entry or one of its rows is unusable."""


class TemplateError(LfRayError):
    """A chat template is unknown or does not fit the tokenizer."""


class ModelError(LfRayError):
    """A model or tokenizer cannot be found, built or loaded."""


class TrainError(LfRayError):
    """Training failed on the worker group for a reason that is not a bad input."""


class StorageError(LfRayError):
    """A storage URI or path cannot be read or written."""
