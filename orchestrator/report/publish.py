"""What `run` leaves behind once a sweep ends: summary.json written atomically (a sweep stopped while writing it must
not leave half a file where the last good one was), and on the sweep's MLflow run its result runs and the report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def publish_results(
    tracker, parent: str, summary: dict, dataset: dict, folder: Optional[Path], test_floor, say: Callable[[str], None]
) -> None:
    """A result run per model and seed, and (`folder` not None) the figures and HTML report, on the sweep's run.
    A report that cannot be drawn is a warning: the sweep's results are already safe in summary.json."""
    from orchestrator.report.html import write_report
    from orchestrator.report.rows import (
        result_runs,
    )  # imports MLflow: write_atomic is also for runs that record nothing

    tracker.lineage.record_results(parent, summary["sweep_id"], result_runs(summary), dataset)
    if folder is None:
        return
    try:
        path = write_report(summary, folder, test_floor)
        tracker.lineage.log_report(parent, folder)
        say(f"report: {path} (figures beside it; also under report/ on the sweep's run)")
    except Exception as error:  # noqa: BLE001 - the results are safe in summary.json already
        say(f"[yellow]warning:[/] report not written: {type(error).__name__}: {error}")
