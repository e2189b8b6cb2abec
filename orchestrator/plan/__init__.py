"""Stage 2, the plan: the sweep as a DAG of nodes, each node's content key (one identity, one function), and what
the store already holds."""

from orchestrator.plan.dag import DagBuilder, ModelNodes, Node, ResultRow, SeedControls, SweepDAG, build_dag
from orchestrator.plan.identity import NodeIdentity, canonical_json, key_view, node_identity
from orchestrator.plan.sweep import STATUSES, NodeState, Sweep

__all__ = [
    "STATUSES",
    "DagBuilder",
    "ModelNodes",
    "Node",
    "NodeIdentity",
    "NodeState",
    "ResultRow",
    "SeedControls",
    "Sweep",
    "SweepDAG",
    "build_dag",
    "canonical_json",
    "key_view",
    "node_identity",
]
