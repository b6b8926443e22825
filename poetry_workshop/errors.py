"""User-facing errors: one line that names the file or value and the fix, and an exit code.

Front ends catch `WorkshopError` and print its message without a traceback; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the work ran but something in it failed (a batch item, a generation)
    USAGE = 2  # bad flags, bad config, bad input files: fix the input and run again
    INTERRUPTED = 130


class WorkshopError(Exception):
    """An expected failure with a message a person can act on."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, exit_code: ExitCode | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(WorkshopError):
    """A config file is missing, unreadable, or holds an unknown key or a wrong type."""


class ModelFileError(WorkshopError):
    """A GGUF file is missing, not a GGUF, truncated, or lacks what the engine needs."""


class PromptTooLongError(WorkshopError):
    """The prompt cannot fit the model's context even after dropping old rounds."""


class StoreError(WorkshopError):
    """The session database cannot be opened or written."""


class GenerationError(WorkshopError):
    """llama.cpp failed while generating."""

    exit_code = ExitCode.FAILED
