"""What the record needs of a planned node: a protocol, so the record never imports the planner."""

from __future__ import annotations

from typing import Any, Protocol


class TrackedNode(Protocol):
    """What the record needs of a planned node (orchestrator.plan.Node is one)."""

    key: str
    kind: str
    slot: str  # the node's place regardless of hyperparameters: earlier runs in it explain why this one is new
    label: str
    config: Any  # the kind's typed config; its as_dict() is what the key and the run's params see
    about: dict  # the model it makes or measures: method, hparams, seed, start (params of its run, not of its key)

    @property
    def input_keys(self) -> dict[str, str]: ...
