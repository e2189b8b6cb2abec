"""`run`'s first step: a re-run whose identical sweep already finished in the store (orchestrator/track/finished.py) has
nothing to compute and nothing new to record. Its summary.json is that sweep's, unchanged, with this run noted beside
it under `rerun` (its node counts, every node cached, and its wall time): the results are that sweep's, so the summary
says how they were computed, and `report` of it logs to that sweep's run only what that sweep recorded. Its report is
the one drawn for that sweep: kept when the folder already holds it, copied from the sweep's run when its artifacts are
on this file system, drawn again when neither holds it for this test-accuracy floor."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional

from orchestrator.app.output import Output
from orchestrator.app.requests import RunRequest
from orchestrator.app.tracking import outputs_that_vanish, refuse_a_store_that_vanishes, tracking_uri
from orchestrator.report.publish import write_atomic
from orchestrator.report.stamp import RERUN, drawn_from, stamp
from orchestrator.report.table import summary_tables
from orchestrator.spec.fingerprint import Fingerprint, fingerprint
from orchestrator.track.finished import FinishedSweep, find_finished
from orchestrator.track.ui import absolute, ui_address

REPORT_FATE = {"kept": "already there", "copied": "copied from the sweep's run", "drawn": "drawn again"}


def reusable_fingerprint(request: RunRequest) -> Optional[Fingerprint]:
    """The sweep's fingerprint, or None where a finished twin must not stand in for this run: the file cannot be
    read this way (load_sweep then says why), or it has a search (whose trials are outside the DAG)."""
    found = fingerprint(request.config, list(request.overrides))
    return None if found is None or found.searches else found


def reuse_finished(request: RunRequest, found: Fingerprint, began: float, out: Output) -> bool:
    """Whether the same sweep finished in its store; then its results are printed and written as this run's, and
    nothing is computed or recorded. For a sqlite store none of torch, MLflow or SciPy is imported."""
    target = tracking_uri(request.tracking_uri, request.config, found.tracking.uri)
    refuse_a_store_that_vanishes(target, found.tracking, request.config)
    uri = target.uri
    finished = find_finished(uri, found.tracking.experiment, found.digest)
    if finished is None:
        return False
    summary, report = write_reused(
        finished, request.summary, request.report, request.test_floor, time.perf_counter() - began
    )
    if note := outputs_that_vanish(request.summary, request.report):
        out.say(f"[yellow]note:[/] {note}")
    n = summary["nodes"]["total"]
    out.say(
        f"sweep [bold]{summary['sweep']}[/]: the same sweep, {finished.sweep_id} (parent run {finished.run_id}), "
        f"finished in this store and its {n} nodes are still its results: nothing to compute or record "
        "(--record-again records this run as a sweep of its own)"
    )
    for table in summary_tables(summary):
        out.show(table)
    if request.report is not None:
        out.say(f"report: {request.report / 'report.html'} ({REPORT_FATE[report]})")
    out.say(
        f"0 executed, {n} cached, 0 failed in {summary[RERUN]['wall_seconds']:.2f} s; summary in {request.summary} "
        f"(that sweep's, this run noted under `{RERUN}`); parent run {finished.run_id}"
    )
    out.say(f"results in MLflow's runs table: {ui_address(absolute(uri), finished.experiment_id)}")
    return True


def reused_summary(finished: FinishedSweep, seconds: float) -> dict:
    """The finished sweep's summary as it recorded it, and beside it what this run did."""
    total = finished.summary["nodes"]["total"]
    rerun = {
        "nodes": {"total": total, "executed": 0, "cached": total, "failed": 0},
        "wall_seconds": round(seconds, 3),
        "sweep_run_id": finished.run_id,
    }
    return {**finished.summary, RERUN: rerun}


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
