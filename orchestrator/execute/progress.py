"""Progress of a running sweep, where each reader looks for it: rich's bar on a terminal; one line per finished node
when stdout is not a terminal (under `ray job submit`, CI, nohup, a pipe), since a bar prints nothing there until
the end; and the counts on the sweep's parent run (tag `progress`, metric `nodes_done`), so the MLflow UI shows
how far a sweep is while it runs."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

FINAL = ("executed", "cached", "failed", "skipped")
PUBLISH_SECONDS = 2.0  # the parent run's counts are updated at most this often (and at the end)


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class SweepProgress:
    """The scheduler's `on_change` callback; a context manager around the run."""

    def __init__(self, sweep, pool_name: str, tracker, parent_run_id: str, console, stream: Optional[TextIO] = None):
        self.sweep, self.pool_name, self.tracker, self.parent = sweep, pool_name, tracker, parent_run_id
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
        self.reported: dict[
            object, str
        ] = {}  # node -> the final status last written (a recomputed node finishes twice)
        self.start, self.published = time.monotonic(), 0.0

    def __enter__(self) -> SweepProgress:
        self.bar.start()
        self.task = self.bar.add_task("", total=len(self.sweep.dag.nodes))
        # Nodes the plan already found in the store: one line for all of them, not one each.
        found = {node: state.status for node, state in self.sweep.states.items() if state.status in FINAL}
        self.reported.update(found)
        if found and self.lines:
            print(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{len(found)}/{len(self.sweep.dag.nodes)}] found in the store: "
                f"{len(found)} cached nodes",
                file=self.stream,
                flush=True,
            )
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()
        self._publish(force=True)

    def follow(self, sweep) -> None:
        """The sweep grew (a search's best settings joined its methods)."""
        self.sweep = sweep
        self.bar.update(self.task, total=len(sweep.dag.nodes))

    def __call__(self, node) -> None:
        c = self.sweep.counts()
        done = c["executed"] + c["cached"] + c["failed"] + c["skipped"]
        now = f" running {c['running']}" + (f" waiting on another sweep {c['waiting']}" if c["waiting"] else "")
        if self.pool_name == "local" and self.sweep.states[node].status == "running":
            now = f" running {node.label}"
        self.bar.update(
            self.task,
            completed=done,
            description=(f"done {c['executed']} cached {c['cached']} failed {c['failed'] + c['skipped']}{now}"),
        )
        status = self.sweep.states[node].status
        if status in FINAL and self.reported.get(node) != status:
            self.reported[node] = status
            if self.lines:
                print(self.line(node, done, c), file=self.stream, flush=True)
            self._publish(force=done == len(self.sweep.dag.nodes))

    def line(self, node, done: int, counts: dict[str, int]) -> str:
        """`<time> [done/total] <status> <node> in <s> · elapsed h:mm:ss · remaining ~h:mm:ss`."""
        state, total = self.sweep.states[node], len(self.sweep.dag.nodes)
        elapsed = time.monotonic() - self.start
        what = {
            "executed": f"in {state.seconds:.1f} s",
            "cached": f"(run {(state.run_id or '?')[:12]})",
            "failed": f": {state.error or ''}"[:200],
            "skipped": "(an input failed)",
        }[state.status]
        # The pace of the nodes computed so far, for the ones left (cached nodes are found at once, at the start).
        left = f"~{clock(elapsed / counts['executed'] * (total - done))}" if counts["executed"] else "unknown"
        return (
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{done}/{total}] {state.status} {node.label} {what} · "
            f"elapsed {clock(elapsed)} · remaining {left}"
        )

    def _publish(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.published < PUBLISH_SECONDS:
            return
        self.published = time.monotonic()
        c = self.sweep.counts()
        done = c["executed"] + c["cached"] + c["failed"] + c["skipped"]
        try:
            self.tracker.sweeps.progress(
                self.parent,
                done,
                len(self.sweep.dag.nodes),
                {"executed": c["executed"], "cached": c["cached"], "failed": c["failed"] + c["skipped"]},
            )
        except Exception:
            pass
