"""A re-run whose identical sweep already finished in the store (orchestrator/track/finished.py): nothing to compute
and nothing new to record. Its summary.json is that sweep's, with this run's node counts (every node cached) and
wall time. Its report is the one drawn for that sweep: kept when the folder already holds it, copied from the sweep's
run when its artifacts are on this file system, drawn again when neither holds it for this test-accuracy floor."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from orchestrator.report.publish import write_atomic
from orchestrator.report.stamp import drawn_from, stamp
from orchestrator.report.table import summary_tables
from orchestrator.spec.fingerprint import Fingerprint
from orchestrator.track.finished import FinishedSweep, find_finished
from orchestrator.track.ui import absolute, ui_address

REPORT_FATE = {"kept": "already there", "copied": "copied from the sweep's run", "drawn": "drawn again"}


def reuse_finished(
    uri: str,
    found: Fingerprint,
    summary_path: Path,
    folder: Optional[Path],
    floor: Optional[float],
    start: float,
    say: Callable[[str], None],
    show: Callable,
) -> bool:
    """Whether the same sweep finished in the store at `uri`; then its results are printed (`show` the tables, `say`
    the rest) and written as this run's, and nothing is computed or recorded. For a sqlite store none of torch,
    MLflow or SciPy is imported."""
    finished = find_finished(uri, found.tracking.experiment, found.digest)
    if finished is None:
        return False
    summary, report = write_reused(finished, summary_path, folder, floor, time.perf_counter() - start)
    n = summary["nodes"]["total"]
    say(
        f"sweep [bold]{summary['sweep']}[/]: the same sweep, {finished.sweep_id} "
        f"(parent run {finished.run_id}), finished "
        f"in this store and its {n} nodes are still its results: nothing to compute or record (--record-again records "
        "this run as a sweep of its own)"
    )
    for table in summary_tables(summary):
        show(table)
    if folder is not None:
        say(f"report: {folder / 'report.html'} ({REPORT_FATE[report]})")
    say(
        f"0 executed, {n} cached, 0 failed in {summary['wall_seconds']:.2f} s; summary in {summary_path}; "
        f"parent run {finished.run_id}"
    )
    say(f"results in MLflow's runs table: {ui_address(absolute(uri), finished.experiment_id)}")
    return True


def reused_summary(finished: FinishedSweep, seconds: float) -> dict:
    total = finished.summary["nodes"]["total"]
    return {
        **finished.summary,
        "nodes": {"total": total, "executed": 0, "cached": total, "failed": 0},
        "wall_seconds": seconds,
    }


def write_reused(
    finished: FinishedSweep, summary_path: Path, folder: Optional[Path], floor: Optional[float], seconds: float
) -> tuple[dict, str]:
    """(the summary written, what became of the report: kept, copied, drawn or none)."""
    summary = reused_summary(finished, seconds)
    write_atomic(summary_path, json.dumps(summary, indent=1))
    if folder is None:
        return summary, "none"
    wanted = stamp(finished.summary, floor)
    if drawn_from(folder) == wanted:
        return summary, "kept"
    if finished.report is not None and drawn_from(finished.report) == wanted:
        shutil.copytree(finished.report, folder, dirs_exist_ok=True)
        return summary, "copied"
    from orchestrator.report.html import write_report  # matplotlib: only when the report must be drawn

    write_report(finished.summary, folder, floor)
    return summary, "drawn"
