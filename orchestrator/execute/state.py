"""A run's state of its plan: each node's status, the run holding its result and the result itself, found in the
record or computed now. The plan never changes; this does, as the scheduler settles nodes, and the summary is read
off it at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Optional

import torch

from orchestrator.plan import ForgetSets, Node, Plan, resolve_key
from orchestrator.track import Artifacts
from workloads.forget import ForgetSet


class Status(str, Enum):
    PENDING = "pending"  # not looked up yet, or to run again
    CACHED = "cached"  # its result was already in the store
    WAITING = "waiting"  # another sweep is computing it
    RUNNING = "running"  # claimed by this sweep and handed to a worker
    EXECUTED = "executed"  # computed by this sweep
    FAILED = "failed"  # raised (after its retries) or lost its worker too often
    SKIPPED = "skipped"  # an input failed

    @property
    def done(self) -> bool:
        """Its result is there for the nodes that read it."""
        return self in (Status.CACHED, Status.EXECUTED)

    @property
    def lost(self) -> bool:
        """It will not have a result in this run."""
        return self in (Status.FAILED, Status.SKIPPED)

    @property
    def final(self) -> bool:
        return self.done or self.lost


@dataclass
class NodeState:
    status: Status = Status.PENDING
    run_id: Optional[str] = None
    result: Optional[dict] = None
    seconds: float = 0.0  # its compute time, when this sweep computed it
    error: Optional[str] = None


class RunState:
    """`run[node]` is the node's state; lookups go to the record's artifacts (`Artifacts.find`). `sweep_id`: the
    sweep this run records as (a result this very sweep computed earlier, in a search's trials, counts as executed)."""

    def __init__(self, plan: Plan, artifacts: Artifacts, sweep_id: str = ""):
        self.plan, self.artifacts, self.sweep_id = plan, artifacts, sweep_id
        self.nodes = {node: NodeState() for node in plan.dag}
        self.forget_sets = ForgetSets(plan)
        # Looked up and not in the store: the scheduler claims these without looking again (the claim's own search
        # catches a result recorded since), one search fewer for every node the sweep's first lookup missed.
        self.missed: set[Node] = set()

    def __getitem__(self, node: Node) -> NodeState:
        return self.nodes[node]

    def forget_scores(self, source: Node) -> Optional[torch.Tensor]:
        """The scores a forget set is chosen by (a memorization estimate's, a worst-case selection's), once `source`
        is done (None before)."""
        state = self.nodes[source]
        return self.artifacts.load_tensors(state.run_id)["scores"] if state.status.done else None

    def forget_set_for(self, node: Node) -> Optional[ForgetSet]:
        return self.forget_sets.of(node, self.forget_scores)

    def resolve_key(self, node: Node) -> Optional[str]:
        """The node's content key, once its inputs' keys and its forget set are known (None before)."""
        return resolve_key(node, self.forget_sets, self.forget_scores)

    def lookup(self, node: Node) -> bool:
        """Resolves the node's key and looks it up in the store; True if the node is done."""
        state = self.nodes[node]
        if state.status.done:
            return True
        if self.resolve_key(node) is None:
            return False
        found = self.artifacts.find(node.key)
        if found is None:
            self.missed.add(node)
        else:
            self.missed.discard(node)
            ours = self.sweep_id and found.sweep_id == self.sweep_id
            state.status = Status.EXECUTED if ours else Status.CACHED
            state.run_id, state.result = found.run_id, found.result
        return found is not None

    def refresh(self) -> None:
        """Every key that can be resolved, and every node already in the store, in topological order."""
        for node in self.plan.dag:
            self.lookup(node)

    def blocked(self, node: Node) -> bool:
        return any(self.nodes[inp].status.lost for inp in node.inputs.values())

    def counts(self) -> Counter[Status]:
        return Counter(state.status for state in self.nodes.values())

    def finished(self) -> int:
        """Nodes with a final status."""
        return sum(1 for state in self.nodes.values() if state.status.final)
