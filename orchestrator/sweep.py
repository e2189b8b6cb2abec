"""A planned sweep: the DAG, each node's content key (resolved as soon as it can be), its cache state, and how to
execute one node. Executors decide only *where and when* nodes run."""
from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from pathlib import Path
import traceback
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from orchestrator.dag import Node, SweepDAG, build_dag
from orchestrator.handlers import HANDLERS, InputNode, NodeOutput, RunContext, dataset_for, speed_of
from orchestrator.keys import content_key, index_hash
from orchestrator.spec import SweepSpec, as_dict
from orchestrator.tracking import Tracker
from workloads.forget import ForgetSet, attack_pool_size, select_forget_set
from workloads.train import pick_device

STATE_CACHE_SIZE = 8
STATUSES = ("pending", "cached", "running", "executed", "failed", "skipped")


@dataclass
class NodeState:
    status: str = "pending"
    run_id: Optional[str] = None
    result: Optional[dict] = None
    seconds: float = 0.0
    error: Optional[str] = None


@dataclass
class Sweep:
    spec: SweepSpec
    tracker: Tracker
    dag: SweepDAG = field(init=False)
    states: dict[Node, NodeState] = field(init=False)

    def __post_init__(self):
        # Data that is missing must stop a run before any job starts, but a plan can still list every node.
        self.data_error: Optional[str] = None
        pool = None
        try:
            pool = attack_pool_size(dataset_for({"dataset": as_dict(self.spec.dataset)}).y_train, self.spec.forget)
        except (FileNotFoundError, RuntimeError) as error:
            self.data_error = f"dataset: {error}"
        scores_file = self.spec.memorization.scores_file
        if self.spec.forget.criterion != "random" and scores_file is not None and not Path(scores_file).is_file():
            missing = f"memorization.scores_file: no such file {scores_file}"
            self.data_error = missing if self.data_error is None else f"{self.data_error}; {missing}"
        self.dag = build_dag(self.spec, pool)
        self.states = {node: NodeState() for node in self.dag}
        self._forget_set: Optional[ForgetSet] = None
        # Recently used checkpoints, so a parent read by many children is loaded once; bounded for ResNet-sized sweeps.
        self._states_cache: OrderedDict[str, dict] = OrderedDict()

    # -- keys -----------------------------------------------------------------------------------------------------
    def forget_set(self) -> Optional[ForgetSet]:
        """The forget set, once the memorization scores it may need exist (None before that)."""
        if self._forget_set is None and self.data_error is None:
            scores = None
            if self.dag.memorization is not None:
                state = self.states[self.dag.memorization]
                if state.status not in ("cached", "executed"):
                    return None
                scores = self.tracker.load_tensors(state.run_id)["scores"]
            data = dataset_for({"dataset": as_dict(self.spec.dataset)})
            self._forget_set = select_forget_set(data.y_train, self.spec.forget, scores, data.num_classes)
        return self._forget_set

    def resolve_key(self, node: Node) -> Optional[str]:
        if node.key is None and all(inp.key for inp in node.inputs.values()):
            identity = {"name": node.config.get("dataset", {}).get("name"), "split": "train"}
            if node.reads_forget_set:
                forget_set = self.forget_set()
                if forget_set is None:
                    return None
                identity |= {"forget": index_hash(forget_set.forget), "retain": index_hash(forget_set.retain)}
                if len(forget_set.canaries):
                    identity["canaries"] = index_hash(torch.cat([forget_set.canaries, forget_set.canary_labels]))
            node.key = content_key(node.kind, HANDLERS[node.kind].version, node.config,
                                   {role: inp.key for role, inp in node.inputs.items()}, identity)
        return node.key

    def lookup(self, node: Node) -> bool:
        """Resolves the key and checks the cache; True if the node is already done."""
        state = self.states[node]
        if state.status in ("cached", "executed"):
            return True
        if self.resolve_key(node) is None:
            return False
        found = self.tracker.find(node.key)
        if found is not None:
            state.status, state.run_id, state.result = "cached", found.run_id, found.result
        return found is not None

    def refresh(self) -> None:
        """Resolve every key that can be resolved and mark cached nodes, in topological order (the `plan`)."""
        for node in self.dag:
            self.lookup(node)

    # -- execution ------------------------------------------------------------------------------------------------
    def blocked(self, node: Node) -> bool:
        return any(self.states[inp].status in ("failed", "skipped") for inp in node.inputs.values())

    def input_node(self, node: Node) -> InputNode:
        state = self.states[node]

        def load_state():
            if node.key not in self._states_cache:
                self._remember(node.key, self.tracker.load_state(state.run_id))
            self._states_cache.move_to_end(node.key)
            return self._states_cache[node.key]

        return InputNode(state.result, load_state, lambda: self.tracker.load_tensors(state.run_id))

    def execute(self, node: Node, device: torch.device) -> NodeOutput:
        """Runs one node in this process (key already resolved, inputs done)."""
        config = node.config
        data = dataset_for(config, device, speed_of(config)) if "dataset" in config else None
        forget_set = self.forget_set() if node.reads_forget_set else None
        if forget_set is not None and len(forget_set.canaries):
            data = dataclasses.replace(data, y_train=forget_set.training_labels(data.y_train))
        ctx = RunContext(device, data, forget_set, config)
        inputs = {role: self.input_node(inp) for role, inp in node.inputs.items()}
        return HANDLERS[node.kind].run(config, inputs, ctx)

    def run_node(self, node: Node, device: torch.device, sweep_id: str, parent_run_id: str) -> None:
        """Execute and record one ready node; failures are recorded, never raised."""
        state = self.states[node]
        state.status = "running"
        start = time.perf_counter()
        try:
            output = self.execute(node, device)
            state.seconds = time.perf_counter() - start
            state.run_id = self.tracker.record(node, sweep_id, parent_run_id, output, state.seconds)
            state.result, state.status = output.result, "executed"
            if output.state is not None:
                self._remember(node.key, output.state)
        except Exception as error:  # noqa: BLE001 - a failed node must not stop the sweep
            state.status, state.error = "failed", f"{type(error).__name__}: {error}"
            self.tracker.record_failure(node, sweep_id, parent_run_id, traceback.format_exc())

    def _remember(self, key: str, state: dict) -> None:
        self._states_cache[key] = state
        while len(self._states_cache) > STATE_CACHE_SIZE:
            self._states_cache.popitem(last=False)

    def counts(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUSES}
        for state in self.states.values():
            counts[state.status] += 1
        return counts


class LocalExecutor:
    """In-process, one node at a time, in topological order."""

    name = "local"

    def __init__(self, device: str = "auto"):
        self.device = pick_device(device)

    def run(self, sweep: Sweep, sweep_id: str, parent_run_id: str, on_change: Callable[[Node], None] = lambda n: None) -> None:
        for node in sweep.dag:
            if sweep.blocked(node):
                sweep.states[node].status = "skipped"
            elif sweep.lookup(node):
                sweep.tracker.link(sweep.states[node].run_id, sweep_id, parent_run_id)
            else:
                sweep.states[node].status = "running"
                on_change(node)
                sweep.run_node(node, self.device, sweep_id, parent_run_id)
            on_change(node)
