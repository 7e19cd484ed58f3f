"""Typed exceptions. The library raises these; only the CLI prints them, as one `error:` line and a hint."""

from __future__ import annotations


class CodetuneError(Exception):
    """An expected failure caused by input or environment, with a hint that says how to fix it.

    Args:
        message: what failed, naming the key, path or value involved.
        hint: the next thing to do (a command, a flag, a package to install).
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}; {self.hint}"


class ConfigError(CodetuneError):
    """A bad preset, config file, key or value."""


class DataError(CodetuneError):
    """A corpus that cannot be built, or too little data for what was asked."""


class ModelLoadError(CodetuneError):
    """A model that cannot be found or loaded."""


class ToolchainError(CodetuneError):
    """A compiler or runtime that is missing or broken."""


class BenchmarkError(CodetuneError):
    """A benchmark file or sample file that cannot be read."""
