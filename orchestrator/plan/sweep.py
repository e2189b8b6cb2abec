"""A planned sweep: the DAG, each node's content key (resolved as soon as it can be) and its state, found in the
store or not. Executors (orchestrator/execute) decide where and when the nodes that are not found run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from orchestrator.plan.dag import Node, SweepDAG, build_dag
from orchestrator.plan.identity import canonical_json, node_identity
from orchestrator.plan.labels import Labels, training_labels
from orchestrator.spec import SweepSpec, as_dict
from orchestrator.spec.corruption import corruption_sections
from orchestrator.track import Tracker
from workloads.corruptions import draw_corruption, forget_set_for
from workloads.forget import ForgetSet, attack_pool_size, forget_set_problem, select_forget_set
from workloads.nodes import dataset_for

STATUSES = ("pending", "cached", "waiting", "running", "executed", "failed", "skipped")


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
    sweep_id: str = ""
    dag: SweepDAG = field(init=False)
    states: dict[Node, NodeState] = field(init=False)

    def __post_init__(self):
        # Data that is missing must stop a run before any job starts, but a plan can still list every node.
        self.data_error: Optional[str] = None
        self.data_checked = False  # whether the data itself was read (labels may come from the cache)
        self.labels: Optional[Labels] = None
        pool = None
        try:
            self.labels, cached = training_labels(as_dict(self.spec.dataset))
            self.data_checked = not cached
            pool = attack_pool_size(self.labels.y_train, self.spec.forget)
        except (FileNotFoundError, RuntimeError) as error:
            self.data_error = f"dataset: {error}"
        # Config that cannot work with this data (a class it lacks, a forget set too small for the k grid): bad input.
        self.input_error = None if self.labels is None else input_problem(self.spec, self.labels, pool)
        scores_file = self.spec.memorization.scores_file
        if self.spec.forget.criterion != "random" and scores_file is not None and not Path(scores_file).is_file():
            missing = f"memorization.scores_file: no such file {scores_file}"
            self.data_error = missing if self.data_error is None else f"{self.data_error}; {missing}"
        self.dag = build_dag(self.spec, pool)
        self.states = {node: NodeState() for node in self.dag}
        self._forget_set: Optional[ForgetSet] = None
        self._views: dict[str, ForgetSet] = {}  # a task space's forget sets, by corruption and discovery rate

    def check_data(self) -> Optional[str]:
        """Reads the data once if only its cached labels were used, so a run that must compute something learns
        before any job starts that the data is missing. Returns the problem, or None."""
        if self.data_error is None and not self.data_checked:
            try:
                dataset_for({"dataset": as_dict(self.spec.dataset)})
                self.data_checked = True
            except (FileNotFoundError, RuntimeError) as error:
                self.data_error = f"dataset: {error}"
        return self.data_error

    # -- keys -----------------------------------------------------------------------------------------------------
    def forget_set(self) -> Optional[ForgetSet]:
        """The forget set, once the memorization scores it may need exist (None before that)."""
        if self._forget_set is None and self.data_error is None:
            scores = None
            if self.dag.memorization is not None:
                state = self.states[self.dag.memorization]
                if state.status not in ("cached", "executed"):
                    return None
                scores = self.tracker.artifacts.load_tensors(state.run_id)["scores"]
            self._forget_set = select_forget_set(self.labels.y_train, self.spec.forget, scores, self.labels.num_classes)
        return self._forget_set

    def forget_set_for(self, node: Node) -> Optional[ForgetSet]:
        """The forget set a node reads: the sweep's, or in a task space its cell's view of the corrupted set."""
        if "corruption" not in node.config:
            return self.forget_set()
        if self.data_error is not None:
            return None
        which = canonical_json([node.config["corruption"], node.config.get("forget")])
        if which not in self._views:
            self._views[which] = forget_set_for(node.config, self.labels.y_train, self.labels.num_classes)
        return self._views[which]

    def resolve_key(self, node: Node) -> Optional[str]:
        if node.key is None and all(inp.key for inp in node.inputs.values()):
            forget_set = self.forget_set_for(node) if node.reads_forget_set else None
            if node.reads_forget_set and forget_set is None:
                return None
            node.key = node_identity(node.kind, node.config, node.input_keys, forget_set).key
        return node.key

    def lookup(self, node: Node) -> bool:
        """Resolves the key and checks the cache; True if the node is already done."""
        state = self.states[node]
        if state.status in ("cached", "executed"):
            return True
        if self.resolve_key(node) is None:
            return False
        found = self.tracker.artifacts.find(node.key)
        if found is not None:  # computed earlier by this very sweep (a search trial, another phase) counts as executed
            state.status = "executed" if self.sweep_id and found.sweep_id == self.sweep_id else "cached"
            state.run_id, state.result = found.run_id, found.result
        return found is not None

    def refresh(self) -> None:
        """Resolve every key that can be resolved and mark cached nodes, in topological order (the `plan`)."""
        for node in self.dag:
            self.lookup(node)

    # -- execution ------------------------------------------------------------------------------------------------
    def blocked(self, node: Node) -> bool:
        return any(self.states[inp].status in ("failed", "skipped") for inp in node.inputs.values())

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for state in self.states.values():
            counts[state.status] += 1
        return counts


def input_problem(spec: SweepSpec, labels: Labels, pool: int) -> Optional[str]:
    """What in the sweep the training labels rule out, as 'key: why', or None."""
    if spec.corruption is not None:  # the forget sets are the discovered subsets; each cell caps its own k grid
        return corruption_problem(spec, labels)
    problem = forget_set_problem(labels.y_train, labels.num_classes, spec.forget)
    if problem is not None:
        return f"{problem[0]}: {problem[1]}"
    beyond = [k for k in spec.relearn.k if k > pool]
    if beyond:
        return (
            f"relearn.k: {beyond} beyond the attack pool: the attacker may draw on {pool} forget examples "
            f"(forget.attack_pool_fraction of the forget set)"
        )
    return None


def corruption_problem(spec: SweepSpec, labels: Labels) -> Optional[str]:
    """Each corruption drawn once per seed from the labels: one the data cannot hold (more examples than a class has,
    a class it lacks) is bad input, found before any job starts."""
    for seed in spec.seeds:
        for i, section in enumerate(corruption_sections(spec.corruption, seed)):
            try:
                draw_corruption(labels.y_train, labels.num_classes, section)
            except (ValueError, IndexError) as error:
                return f"corruption.kinds[{i}] ({section['name']}, seed {seed}): {error}"
    return None
