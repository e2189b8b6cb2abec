"""Stage 2, the plan: the sweep as a DAG of nodes, each with its kind's typed config (`dag.py`), read against the
training labels once (`plan.py`: `plan_sweep`), each node's content key (`identity.py`: one identity, one function),
resolved as the forget sets become known (`keys.py`), and the compute estimate of what would run (`cost.py`). A plan
never changes once made; what the store holds of it is the run's state (orchestrator/execute/state.py)."""

from orchestrator.plan.dag import (
    DagBuilder,
    ModelNodes,
    Node,
    ResultRow,
    SeedControls,
    SweepDAG,
    build_dag,
    method_settings,
)
from orchestrator.plan.identity import NodeIdentity, canonical_json, key_view, node_identity
from orchestrator.plan.keys import ForgetSets, resolve_key
from orchestrator.plan.plan import Plan, data_problem, plan_sweep

__all__ = [
    "DagBuilder",
    "ForgetSets",
    "ModelNodes",
    "Node",
    "NodeIdentity",
    "Plan",
    "ResultRow",
    "SeedControls",
    "SweepDAG",
    "build_dag",
    "canonical_json",
    "data_problem",
    "key_view",
    "method_settings",
    "node_identity",
    "plan_sweep",
    "resolve_key",
]
