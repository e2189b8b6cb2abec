"""The one error a bad sweep input raises, and the typed check every section goes through."""

from __future__ import annotations

from typing import Any

from workloads.config import ConfigError, typed


class SpecError(ValueError):
    """Bad sweep input: one message naming the file and key. The CLI prints it and exits 2, before any job starts."""


def checked(schema: type, values: Any, where: str) -> Any:
    """values merged onto `schema`'s structured config -> a plain dataclass instance, or SpecError naming the key."""
    try:
        return typed(schema, values, where)
    except ConfigError as error:
        raise SpecError(str(error)) from None
