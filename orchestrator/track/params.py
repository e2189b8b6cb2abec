"""A nested config as MLflow params (dotted names; lists, booleans and None as JSON), and batching of store calls.
No MLflow import: the report's result rows are built with it too."""

from __future__ import annotations

import json
from typing import Any


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)
    return out


def chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]
