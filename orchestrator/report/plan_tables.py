"""What `plan` shows: every node with its status, kind, label, key and why it would run; the counts per kind; and
the compute estimate of the nodes to run."""

from __future__ import annotations

import time

from rich.table import Table


def plan_table(name: str, rows: list[tuple[str, str, str, str, str]]) -> Table:
    """rows: (status, kind, node, key, why it runs), in topological order."""
    table = Table(title=f"plan for sweep {name}")
    for column in ("status", "kind", "node", "key", "why it runs"):
        table.add_column(column)
    for status, *rest in rows:
        table.add_row("[green]cached[/]" if status == "cached" else "[yellow]run[/]", *rest)
    return table


def kind_counts_line(counts: dict[str, tuple[int, int]]) -> str:
    """kind -> (to run, cached), as one line."""
    return ", ".join(f"{kind}: {run} to run, {cached} cached" for kind, (run, cached) in counts.items())


def estimate_lines(found) -> list:
    """The plan's compute estimate (plan/cost.py `Estimate`) per node kind, the step costs it rests on, and a line
    that says how much and how sure."""
    table = Table(title=f"estimated compute of the nodes to run, on {found.machine}")
    for column in ("kind", "nodes", "train steps", "hours", "rests on"):
        table.add_column(column, justify="right" if column not in ("kind", "rests on") else "left")
    for kind, k in found.kinds.items():
        basis = "measured step costs" if not k.calibrated else f"calibrated: {k.calibrated} of {k.nodes} nodes"
        table.add_row(kind, str(k.nodes), f"{k.train_steps:,}", f"{k.seconds / 3600:.3f}", basis)
    nodes, steps = sum(k.nodes for k in found.kinds.values()), sum(k.train_steps for k in found.kinds.values())
    table.add_row("[bold]total", str(nodes), f"{steps:,}", f"[bold]{found.seconds / 3600:.3f}", "")
    steps_table = Table(title="what a step costs here, per model and batch size")
    for column in ("model", "batch", "measured ms/step", "measured", "finished nodes", "used ms/step"):
        steps_table.add_column(column, justify="left" if column in ("model", "measured", "finished nodes") else "right")
    for basis in found.steps.values():
        steps_table.add_row(*step_row(basis))
    overhead = (
        f" and {found.overhead:.2f} s per node (the median of {found.overhead_nodes} finished nodes that compute "
        "nothing)"
        if found.overhead_nodes
        else ""
    )
    total = (
        f"about {found.seconds / 3600:.2f} device-hours ({found.seconds / 60:.1f} min) on this machine, one node at a "
        f"time: the steps' costs{overhead}; a cost the plan's finished nodes of the same model and batch size "
        "recorded calibrates the measured one"
    )
    return [table, steps_table, total]


def step_row(basis) -> tuple[str, ...]:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(basis.measured_at))
    busy = " (busy)" if basis.load > basis.cores else ""
    measured = f"{when}, load {basis.load:.1f} on {basis.cores} cores{busy}, median block {basis.spread:.1f}x"
    nodes = "-" if basis.factor is None else f"x{basis.factor:.2g} from {basis.nodes}"
    return (
        basis.model,
        str(basis.batch),
        f"{1000 * basis.step_seconds:.2f}",
        measured,
        nodes,
        f"{1000 * basis.used_seconds:.2f}",
    )
