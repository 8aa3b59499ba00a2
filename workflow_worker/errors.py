"""Every exception the package raises on purpose, for applications to catch."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A setting has a value the worker cannot use; the message names the variable."""

    def __init__(self, variable: str, value: str, allowed: str) -> None:
        super().__init__(f"{variable}={value!r} is not valid: expected {allowed}")
        self.variable = variable
