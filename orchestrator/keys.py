"""Content keys: sha256 of canonical JSON of what determines a node's result, and nothing else.

Not the git SHA (a refactor must not invalidate the cache) and never pickled tensors (not deterministic).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def canonical(value: Any) -> Any:
    """JSON-ready form with sorted keys and floats written one way however they were typed."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}  # shortest round-trip text: 1e-3 and 0.001 are one key; 1.0 stays apart from 1
    raise TypeError(f"cannot key a value of type {type(value).__name__}: {value!r}")


def canonical_json(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_hex(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def index_hash(index: torch.Tensor) -> str:
    """Hash of an index array by value and order (the order of the forget set decides the attack pool)."""
    return sha256_hex(index.to(torch.int64).cpu().numpy().tobytes())


def content_key(kind: str, version: int, config: dict, input_keys: dict[str, str], dataset_identity: dict) -> str:
    return sha256_hex(canonical_json({
        "kind": kind, "version": version, "config": config, "inputs": input_keys, "dataset": dataset_identity,
    }))
