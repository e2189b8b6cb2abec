"""What `plan` shows: every node with its status, kind, label, key and why it would run; the counts per kind; and
the compute estimate of the nodes to run."""

from __future__ import annotations

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


def estimate_table(found) -> Table:
    """The plan's compute estimate (plan/cost.py `Estimate`) per node kind."""
    table = Table(title=f"estimated compute of the nodes to run, on {found.machine}")
    for column in ("kind", "nodes", "train steps", "hours"):
        table.add_column(column, justify="right" if column != "kind" else "left")
    for kind, k in found.kinds.items():
        table.add_row(kind, str(k.nodes), f"{k.train_steps:,}", f"{k.seconds / 3600:.3f}")
    nodes, steps = sum(k.nodes for k in found.kinds.values()), sum(k.train_steps for k in found.kinds.values())
    table.add_row("[bold]total", str(nodes), f"{steps:,}", f"[bold]{found.seconds / 3600:.3f}")
    return table
