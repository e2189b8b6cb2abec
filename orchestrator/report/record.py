"""The record as tables for the commands that read it: the sweeps in the store (`status`), stored results per node
kind (`cache ls`), and what `cache verify` and `cache gc` found."""

from __future__ import annotations

from rich.table import Table

COLOURS = {"running": "green", "finished": "blue", "failed": "red", "stopped": "yellow", "killed": "yellow"}


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def status_table(statuses, where: str) -> Table:
    """One row per sweep (track.stored_sweeps.SweepStatus), newest first."""
    table = Table(title=f"sweeps in {where}")
    for column in ("sweep", "sweep id", "state", "nodes done", "started", "by", "run"):
        table.add_column(column, justify="right" if column == "nodes done" else "left")
    for s in statuses:
        done = "-" if s.total is None else f"{s.done or 0}/{s.total}"
        table.add_row(
            s.name, s.sweep_id, f"[{COLOURS.get(s.state, 'white')}]{s.state}[/]", done, s.started, s.user, s.run_id
        )
    return table


def usage_table(kinds: dict, where: str) -> Table:
    """Stored results per node kind (track.cache.KindUsage) and their bytes."""
    table = Table(title=f"stored results in {where}")
    for column in ("kind", "results", "size"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, entry in kinds.items():
        table.add_row(kind, str(entry.runs), size(entry.bytes))
    table.add_row("[bold]total", str(sum(e.runs for e in kinds.values())), size(sum(e.bytes for e in kinds.values())))
    return table


def verify_lines(checked: int, failed: list) -> list[str]:
    lines = [
        f"[red]FAIL[/] {run.data.tags.get('node_kind')} {run.info.run_name} (run {run.info.run_id}): "
        f"{'; '.join(problems)}"
        for run, problems in failed
    ]
    tail = "; the failed ones are no longer results: the next sweep that needs them recomputes them" if failed else ""
    return lines + [
        f"{checked} stored results verified against their sha256: {checked - len(failed)} ok, "
        f"{len(failed)} failed{tail}"
    ]


def garbage_lines(garbage, removing: bool) -> list[str]:
    lines = [
        f"deleted claim run {run.info.run_id} ({run.data.tags.get('node_kind')} {run.info.run_name})"
        for run in garbage.deleted_runs
    ]
    lines += [f"orphaned artifacts {name}/" for name in garbage.orphans]
    verb = "removing" if removing else "would remove (dry run; --yes to remove)"
    return lines + [
        f"{verb}: {len(garbage.deleted_runs)} deleted claim runs, {len(garbage.orphans)} orphaned artifact "
        f"folders ({size(garbage.orphan_bytes)})"
    ]
