"""Typed configs: a dict checked against a registry entry's config dataclass, with errors that name the key.

Every workload reads its config through `typed`, so a value the dataclass does not have, or of the wrong type, is
an error naming its full key path, whether it comes from a sweep file (the orchestrator turns it into a spec error
before any job starts) or from a node's stored config inside a worker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A config value the schema rejects; the message starts with where it is (file or section) and its key."""


def omegaconf_message(error: OmegaConfBaseException, where: str = "") -> str:
    """'<where>.<full key>: <first line of the reason>', the key path spelled as the user writes it."""
    key = getattr(error, "full_key", None)
    first_line = str(error).splitlines()[0]
    if not key:
        return f"{where}: {first_line}" if where else first_line
    if where and not where.endswith(".yaml"):
        return f"{where}.{key}: {first_line}"
    return f"{where + ': ' if where else ''}{key}: {first_line}"


def typed(schema: type, values: Any, where: str) -> Any:
    """values merged onto `schema`'s structured config -> a plain dataclass instance, or ConfigError naming the key."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"{where}.{missing[0]}: required value is missing")
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(omegaconf_message(error, where)) from None


_UNKEYED_AT = "unkeyed_at"


def added_later(default: Any) -> Any:
    """A config field added after content keys were first recorded, with `default` the behaviour from before it
    existed. At that value it stays out of the content key (`keyed`), so stores keep their results; any other
    value enters the key."""
    return dataclasses.field(default=default, metadata={_UNKEYED_AT: default})


def keyed(schema: type, values: dict) -> dict:
    """`values` (a section typed by `schema`) as a content key sees it: without the fields `added_later` that hold
    the value they were added with."""
    neutral = {f.name: f.metadata[_UNKEYED_AT] for f in dataclasses.fields(schema) if _UNKEYED_AT in f.metadata}
    return {k: v for k, v in values.items() if not (k in neutral and type(v) is type(neutral[k]) and v == neutral[k])}


def keyed_section(config: dict, name: str, schema: type) -> dict:
    """`config` with its section `name` as `keyed` leaves it, and the section left out once nothing of it remains
    (so nodes stored before the section existed keep their keys)."""
    section = keyed(schema, config.get(name, {}))
    return {k: v for k, v in config.items() if k != name} | ({name: section} if section else {})


def plain(value: Any) -> Any:
    """A typed config as JSON-ready Python, without OmegaConf: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def as_dict(config: Any) -> dict:
    """A config dataclass (or dict) as plain, resolved Python containers."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
