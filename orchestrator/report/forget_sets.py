"""The summary's `forget` section: the forget set the sweep ran with (its `forget:` settings), and for a worst-case
forget set the selection's settings and, per seed, what its selection did (how much of its random start it kept, its
upper objective and losses per epoch; workloads/selection.py). A sweep per criterion is told apart by it."""

from __future__ import annotations

from orchestrator.execute import RunState
from orchestrator.spec import as_dict
from orchestrator.spec.selection import worst_case_config


def forget_section(run: RunState) -> dict:
    spec = run.plan.spec
    if spec.corruption is not None:  # a task space forgets each cell's discovered subset
        return {"criterion": "discovered", "attack_pool_fraction": spec.forget.attack_pool_fraction}
    section = as_dict(spec.forget)
    if spec.forget.criterion != "worst_case":
        return section
    selections = []
    for controls in run.plan.dag.controls.values():
        node = controls.forget_scores
        result = None if node is None else run[node].result
        if result is not None:
            selections.append({"seed": controls.seed, "run_id": run[node].run_id, **result})
    return section | {"worst_case": as_dict(worst_case_config(spec.worst_case)), "selections": selections}
