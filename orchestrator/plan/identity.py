"""Content keys: what determines a node's result, and nothing else, hashed. The recipe is `NodeIdentity.key`.

Not the git SHA (a refactor must not invalidate the cache) and never pickled tensors (not deterministic).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from workloads.data import DATASETS, location_fields
from workloads.forget import ForgetSet
from workloads.nodes import NODE_KINDS, DataNodeConfig


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


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def index_hash(index: torch.Tensor) -> str:
    """Hash of an index array by value and order (the order of the forget set decides the attack pool)."""
    return sha256_hex(index.to(torch.int64).cpu().numpy().tobytes())


@dataclass(frozen=True)
class NodeIdentity:
    """Everything a node's result depends on.

    - `kind`: the node kind's registry name, and `version`, the kind's integer, bumped only when what the kind
      computes changes;
    - `config`: the node's fully resolved config as the key sees it (`key_view`, then the kind's own): defaults
      filled in, without the fields that only say where files live or that were added later and hold the value
      that reproduces the behaviour from before they existed;
    - `inputs`: role -> content key of each input node;
    - `data`: the dataset's name and split, plus, for a node that reads the forget set, the sha256 of the forget
      and retain index arrays (and of the canaries with their labels; and, in a corrupted-data task space, of the
      corrupted examples in discovery order with their corrupted labels).
    """

    kind: str
    version: int
    config: dict
    inputs: dict[str, str]
    data: dict

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON (sorted keys, floats by their shortest round-trip text) of the identity."""
        return sha256_hex(
            canonical_json(
                {
                    "kind": self.kind,
                    "version": self.version,
                    "config": self.config,
                    "inputs": self.inputs,
                    "dataset": self.data,
                }
            )
        )


def key_view(config: dict) -> dict:
    """A node's config as its key sees it. Hidden: where the data lives (`dataset.args` location fields), where the
    C-score file lives (its bytes' sha256 stands in for it as `scores_sha256`), and `memorization.shards` where it
    does not change the work (1 shard, or scores read from a file)."""
    view = dict(config)
    if "dataset" in view:
        hidden = location_fields(DATASETS.get(view["dataset"]["name"]).config)
        view["dataset"] = {
            **view["dataset"],
            "args": {k: v for k, v in view["dataset"]["args"].items() if k not in hidden},
        }
    memorization = view.get("memorization")
    if memorization is not None:
        scores_file = memorization.get("scores_file")
        memorization = {k: v for k, v in memorization.items() if k != "shards" or (scores_file is None and v > 1)}
        if scores_file is not None:
            memorization["scores_file"] = "<scores_sha256>"
            view["scores_sha256"] = sha256_hex(Path(scores_file).read_bytes()) if Path(scores_file).is_file() else None
        view["memorization"] = memorization
    return view


def data_identity(config: dict, forget_set: Optional[ForgetSet]) -> dict:
    identity = {"name": config.get("dataset", {}).get("name"), "split": "train"}
    if forget_set is not None:
        identity |= {"forget": index_hash(forget_set.forget), "retain": index_hash(forget_set.retain)}
        if len(forget_set.canaries):
            identity["canaries"] = index_hash(torch.cat([forget_set.canaries, forget_set.canary_labels]))
        if forget_set.corruption is not None:  # which examples, in discovery order, and the labels they carry
            identity["corruption"] = index_hash(forget_set.corruption.identity)
    return identity


def node_identity(
    kind: str, config: DataNodeConfig, input_keys: dict[str, str], forget_set: Optional[ForgetSet]
) -> NodeIdentity:
    """The identity of a node of `kind`; `forget_set` is required exactly when the kind reads it for this config."""
    entry = NODE_KINDS.get(kind)
    if entry.reads_forget_set(config) != (forget_set is not None):
        raise ValueError(f"a {kind} node {'needs' if forget_set is None else 'does not read'} the forget set")
    plain = config.as_dict()
    return NodeIdentity(
        kind, entry.version, entry.key_view(key_view(plain)), dict(input_keys), data_identity(plain, forget_set)
    )
