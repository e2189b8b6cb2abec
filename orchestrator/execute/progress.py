"""Progress of a running sweep, where each reader looks for it: rich's bar on a terminal; one line per finished node
when stdout is not a terminal (under `ray job submit`, CI, nohup, a pipe), since a bar prints nothing there until
the end; and the counts on the sweep's parent run (tag `progress`, metric `nodes_done`), so the MLflow UI shows
how far a sweep is while it runs."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.execute.state import RunState, Status

PUBLISH_SECONDS = 2.0  # the parent run's counts are updated at most this often (and at the end)


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def tally(counts) -> dict[str, int]:
    """What the bar, the lines and the parent run show: nodes done, executed, cached, failed (or skipped)."""
    failed = counts[Status.FAILED] + counts[Status.SKIPPED]
    done = counts[Status.EXECUTED] + counts[Status.CACHED] + failed
    return {"done": done, "executed": counts[Status.EXECUTED], "cached": counts[Status.CACHED], "failed": failed}


class SweepProgress:
    """The scheduler's `on_change` callback; a context manager around the run."""

    def __init__(
        self, state: RunState, pool_name: str, tracker, parent_run_id: str, console, stream: Optional[TextIO] = None
    ):
        self.state, self.pool_name, self.tracker, self.parent = state, pool_name, tracker, parent_run_id
        self.stream = stream or sys.stdout
        self.lines = not self.stream.isatty()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not console.is_terminal,
        )
        # node -> the final status last written (a recomputed node finishes twice)
        self.reported: dict[object, Status] = {}
        self.start, self.published = time.monotonic(), 0.0

    @property
    def total(self) -> int:
        return len(self.state.plan.dag.nodes)

    def __enter__(self) -> SweepProgress:
        self.bar.start()
        self.task = self.bar.add_task("", total=self.total)
        # Nodes the plan already found in the store: one line for all of them, not one each.
        found = {node: state.status for node, state in self.state.nodes.items() if state.status.final}
        self.reported.update(found)
        if found and self.lines:
            print(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{len(found)}/{self.total}] found in the store: "
                f"{len(found)} cached nodes",
                file=self.stream,
                flush=True,
            )
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()
        self._publish(force=True)

    def follow(self, state: RunState) -> None:
        """The sweep grew (a search's best settings joined its methods)."""
        self.state = state
        self.bar.update(self.task, total=self.total)

    def __call__(self, node) -> None:
        counts = self.state.counts()
        c = tally(counts)
        now = f" running {counts[Status.RUNNING]}"
        if counts[Status.WAITING]:
            now += f" waiting on another sweep {counts[Status.WAITING]}"
        status = self.state[node].status
        if self.pool_name == "local" and status == Status.RUNNING:
            now = f" running {node.label}"
        description = f"done {c['executed']} cached {c['cached']} failed {c['failed']}{now}"
        self.bar.update(self.task, completed=c["done"], description=description)
        if status.final and self.reported.get(node) != status:
            self.reported[node] = status
            if self.lines:
                print(self.line(node, c), file=self.stream, flush=True)
            self._publish(force=c["done"] == self.total)

    def line(self, node, c: dict[str, int]) -> str:
        """`<time> [done/total] <status> <node> in <s> · elapsed h:mm:ss · remaining ~h:mm:ss`."""
        state, total, done = self.state[node], self.total, c["done"]
        elapsed = time.monotonic() - self.start
        what = {
            Status.EXECUTED: f"in {state.seconds:.1f} s",
            Status.CACHED: f"(run {(state.run_id or '?')[:12]})",
            Status.FAILED: f": {state.error or ''}"[:200],
            Status.SKIPPED: "(an input failed)",
        }[state.status]
        # The pace of the nodes computed so far, for the ones left (cached nodes are found at once, at the start).
        left = f"~{clock(elapsed / c['executed'] * (total - done))}" if c["executed"] else "unknown"
        return (
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{done}/{total}] {state.status.value} {node.label} {what} · "
            f"elapsed {clock(elapsed)} · remaining {left}"
        )

    def _publish(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.published < PUBLISH_SECONDS:
            return
        self.published = time.monotonic()
        c = tally(self.state.counts())
        try:
            counts = {name: c[name] for name in ("executed", "cached", "failed")}
            self.tracker.lineage.progress(self.parent, c["done"], self.total, counts)
        except Exception:  # noqa: BLE001 - the UI's progress must never stop a sweep
            pass
