"""A sweep planned: its spec, its DAG, and what the planner learned from the training labels (the attack pool's size,
a forget set or corruption the data cannot hold). Made once, by `plan_sweep`, and never changed: what a run finds in
the store and does with each node is the run's own state (orchestrator/execute/state.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from orchestrator.plan.dag import SweepDAG, build_dag, method_settings
from orchestrator.plan.labels import Labels, training_labels
from orchestrator.spec import MethodSetting, SweepSpec, as_dict
from orchestrator.spec.corruption import corruption_sections
from workloads.corruptions import draw_corruption
from workloads.forget import MEMORIZATION_CRITERIA, attack_pool_size, forget_set_problem
from workloads.nodes import dataset_for


@dataclass(frozen=True)
class Plan:
    spec: SweepSpec
    dag: SweepDAG
    labels: Optional[Labels]  # None when the data is missing
    # Data that is missing: a plan still lists every node, a run that must compute something stops before any job.
    data_error: Optional[str]
    # Config the labels rule out (a class the data lacks, a forget set too small for the k grid): bad input.
    input_error: Optional[str]
    data_read: bool  # whether the data itself was read (its labels may come from this machine's cache)


def plan_sweep(spec: SweepSpec, settings: Optional[list[MethodSetting]] = None) -> Plan:
    """Reads the training labels (from this machine's cache when it has them) and builds the DAG."""
    labels, data_error, data_read, pool = None, None, False, None
    try:
        labels, cached = training_labels(as_dict(spec.dataset))
        data_read = not cached
        pool = attack_pool_size(labels.y_train, spec.forget)
    except (FileNotFoundError, RuntimeError) as error:
        data_error = f"dataset: {error}"
    scores_file = spec.memorization.scores_file
    if spec.forget.criterion in MEMORIZATION_CRITERIA and scores_file is not None and not Path(scores_file).is_file():
        missing = f"memorization.scores_file: no such file {scores_file}"
        data_error = missing if data_error is None else f"{data_error}; {missing}"
    input_error = None if labels is None else input_problem(spec, labels, pool)
    dag = build_dag(spec, pool, method_settings(spec) if settings is None else settings)
    return Plan(spec, dag, labels, data_error, input_error, data_read)


def data_problem(plan: Plan) -> Optional[str]:
    """What keeps a run from computing: the plan's data error, or, where the plan used only cached labels, the data
    itself failing to load now (read once, before any job starts). None when the data is there."""
    if plan.data_error is not None or plan.data_read:
        return plan.data_error
    try:
        dataset_for({"dataset": as_dict(plan.spec.dataset)})
    except (FileNotFoundError, RuntimeError) as error:
        return f"dataset: {error}"
    return None


def input_problem(spec: SweepSpec, labels: Labels, pool: int) -> Optional[str]:
    """What in the sweep the training labels rule out, as 'key: why', or None."""
    if spec.corruption is not None:  # the forget sets are the discovered subsets; each cell caps its own k grid
        return corruption_problem(spec, labels)
    problem = forget_set_problem(labels.y_train, labels.num_classes, spec.forget)
    if problem is not None:
        return f"{problem[0]}: {problem[1]}"
    population_ks = spec.population.relearn_k if spec.population is not None else []
    for key, ks in (("relearn.k", spec.relearn.k), ("population.relearn_k", population_ks)):
        beyond = [k for k in ks if k > pool]
        if beyond:
            return (
                f"{key}: {beyond} beyond the attack pool: the attacker may draw on {pool} forget examples "
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
