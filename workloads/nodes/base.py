"""What a node kind is: a registered function (config, inputs, context) -> NodeOutput, with the typed config it
takes (workloads/nodes/configs.py), the `version` that enters every key it produces (bump it only when what the kind
computes changes), the input roles it reads and whether it reads the forget set (then the forget and retain indices
enter its key too). The orchestrator looks kinds up by name here; the modules beside this one are the kinds."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, Union

import torch

from workloads.checkpoint import TrainingCheckpoint
from workloads.data import Dataset
from workloads.forget import ForgetSet
from workloads.nodes.configs import DataNodeConfig
from workloads.registry import Registry


@dataclass
class NodeOutput:
    result: dict  # JSON: what the summary and later sweeps read back
    state: Optional[dict] = None  # a model's state_dict, stored as the checkpoint
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list] = field(default_factory=dict)  # name -> [[step, value], ...]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # extra tensor artifacts (memorization scores)


@dataclass
class InputNode:
    """A finished input: its result, and its checkpoint loaded on first use."""

    result: dict
    load_state: Callable[[], dict]
    load_tensors: Callable[[], dict] = dict

    @property
    def state(self) -> dict:
        return self.load_state()


@dataclass
class RunContext:
    device: torch.device
    data: Optional[Dataset]  # on the device
    forget_set: Optional[ForgetSet]
    # Where a long training loop saves its progress and resumes from (the executor's choice; None: it does not).
    checkpoint: Optional[TrainingCheckpoint] = None


Run = Callable[[DataNodeConfig, dict[str, InputNode], RunContext], NodeOutput]


@dataclass(frozen=True)
class Work:
    """How much compute a node does, for the plan's estimate: training steps at a batch size (each stream of a step
    counted: a method stepping on a forget and a retain batch does two) and examples passed forward only."""

    train_steps: int = 0
    batch_size: int = 128
    forward_examples: int = 0


@dataclass(frozen=True)
class DataSize:
    train: int
    test: int


def no_work(config: DataNodeConfig, size: DataSize) -> Work:
    return Work()


@dataclass(frozen=True)
class NodeKind:
    run: Run
    config: type[DataNodeConfig]  # the typed config a node of this kind is built with
    version: int
    reads: tuple[str, ...]  # input roles (glob patterns)
    # Whether a node of this kind reads the forget set, from its config (a constant for most kinds).
    reads_forget_set: Callable[[DataNodeConfig], bool]
    work: Callable[[DataNodeConfig, DataSize], Work] = no_work  # the plan's estimate of its compute
    # The config as the content key sees it (its `as_dict()`, then this): where a kind leaves out fields added later
    # at their old behaviour's value (config.added_later) or adds what else decides its result (a method's version).
    key_view: Callable[[dict], dict] = lambda config: config

    def check(self, config: DataNodeConfig, roles) -> None:
        """A planned node of this kind: its config of the kind's type, its inputs among the roles it reads."""
        if not isinstance(config, self.config):
            raise TypeError(f"a node of this kind takes a {self.config.__name__}, not a {type(config).__name__}")
        unknown = [r for r in roles if not any(fnmatch.fnmatchcase(r, pattern) for pattern in self.reads)]
        if unknown:
            raise ValueError(f"inputs {unknown} are not among the roles this kind reads: {self.reads}")


NODE_KINDS: Registry[NodeKind] = Registry("node kind")


def register_kind(
    name: str,
    config: type[DataNodeConfig],
    version: int = 1,
    reads: tuple[str, ...] = (),
    reads_forget_set: Union[bool, Callable[[DataNodeConfig], bool]] = False,
    work: Callable[[DataNodeConfig, DataSize], Work] = no_work,
    key_view: Callable[[dict], dict] = lambda config: config,
):
    def add(run: Run) -> Run:
        flag = reads_forget_set if callable(reads_forget_set) else (lambda config, value=reads_forget_set: value)
        NODE_KINDS.register(name)(NodeKind(run, config, version, tuple(reads), flag, work, key_view))
        return run

    return add
