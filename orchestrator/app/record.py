"""The commands that only read the record: `report` (table, figures and HTML of an earlier sweep), `compare` (two
sweeps' config differences and metric deltas), `side-by-side` (several sweeps' results in one table), `status` (the
sweeps in the store) and `cache ls | verify | gc`. None of them computes a node or imports torch, except `cache
verify`, which loads every checkpoint the way a worker would (torch.load with weights_only) to prove it still can.
On a sqlite store on this machine `status`, `cache ls` and `compare` read it without MLflow either (app/tracking.py
`open_record`); `report` imports MLflow only to log a report on the sweep's run.

A sweep's record is only ever its own: `report` of a summary.json logs on the sweep's run only the summary that
sweep recorded (a re-run's summary.json is that summary with the re-run noted beside it, so it qualifies), and only
when the run does not hold that report already."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from orchestrator.app.output import Output
from orchestrator.app.requests import RecordRequest
from orchestrator.app.tracking import open_record, open_store, tracking_uri
from orchestrator.report.stamp import RERUN, STAMP, stamp, summary_digest
from orchestrator.spec import SpecError
from orchestrator.track.errors import StoreError


@dataclass(frozen=True)
class StoredSweep:
    """A sweep named on the command line: its summary, and its parent run and the record it was read from when this
    store has it; `from_file`: the summary was read from a file, not from the run."""

    summary: dict
    run: Any = None  # track.records.RunRecord
    record: Any = None  # track.sqlite_record.SqliteRecord | track.stored_sweeps.MlflowRecord
    from_file: bool = False


def find_sweep(ref: str, request: RecordRequest) -> StoredSweep:
    """A sweep by summary.json path, sweep id or parent run id (SpecError when none is found)."""
    if ref.endswith(".json") or Path(ref).is_file():
        summary = read_summary_file(ref)
        try:  # the sweep's run, if this store has it: figures and report go there too
            record = open_record(tracking_uri(request.tracking_uri), request.experiment)
            return StoredSweep(summary, record.sweep(summary["sweep_id"]), record, from_file=True)
        except (SpecError, StoreError):
            return StoredSweep(summary, from_file=True)
    record = open_record(tracking_uri(request.tracking_uri), request.experiment)
    try:
        run = record.sweep(ref)
        return StoredSweep(record.summary(run), run, record)
    except StoreError as error:
        raise SpecError(str(error)) from None


def read_summary_file(path: str) -> dict:
    try:
        summary = json.loads(Path(path).read_text())
        if not isinstance(summary, dict) or not {"sweep_id", "results"} <= summary.keys():
            raise ValueError("no sweep_id or results")
    except (OSError, ValueError) as error:
        raise SpecError(f"{path}: not a readable summary.json ({type(error).__name__}: {error})") from None
    return summary


def report(ref: str, folder: Optional[Path], test_floor: Optional[float], request: RecordRequest, out: Output) -> int:
    from orchestrator.report.html import write_report
    from orchestrator.report.table import summary_tables

    found = find_sweep(ref, request)
    default = Path(ref).parent / "report" if Path(ref).is_file() else Path("reports") / found.summary["sweep_id"]
    folder = folder or default
    for table in summary_tables(found.summary):
        out.show(table)
    path = write_report(found.summary, folder, test_floor)
    out.say(f"report: {path}, figures beside it{log_on_its_run(found, folder, test_floor, request)}")
    return 0


def log_on_its_run(found: StoredSweep, folder: Path, floor: Optional[float], request: RecordRequest) -> str:
    """Logs the report under report/ on the sweep's run when the summary is the one that sweep recorded and the run
    does not hold this report yet; says what became of it."""
    if found.run is None:
        return " (the sweep is not in this store)"
    run_id, sweep_id = found.run.run_id, found.summary["sweep_id"]
    if found.from_file and summary_digest(found.record.summary(found.run)) != summary_digest(found.summary):
        return (
            f"; not logged on run {run_id}: this summary.json is not the summary sweep {sweep_id} recorded (edited, "
            "or a re-run's from before re-runs kept it), and a sweep's run holds only its own report "
            f"(`unlearn-sweep report {sweep_id}` draws the recorded one)"
        )
    if found.record.artifact_json(found.run, f"report/{STAMP}") == stamp(found.summary, floor):
        return f"; run {run_id} already holds this report under report/"
    from orchestrator.track.lineage import SweepLineage

    SweepLineage(open_store(tracking_uri(request.tracking_uri), request.experiment)).log_report(run_id, folder)
    return f"; logged under report/ on run {run_id}"


def side_by_side(refs: list[str], request: RecordRequest, out: Output) -> int:
    from orchestrator.report.side_by_side import side_by_side_table

    if len(refs) < 2:
        raise SpecError("side-by-side: name two sweeps or more")
    out.show(side_by_side_table([find_sweep(ref, request).summary for ref in refs]))
    return 0


def compare(ref_a: str, ref_b: str, request: RecordRequest, out: Output) -> int:
    from orchestrator.report.compare import compare_tables

    a, b = find_sweep(ref_a, request), find_sweep(ref_b, request)
    if a.summary["sweep_id"] == b.summary["sweep_id"]:
        why = (
            " (a re-run's summary.json is that sweep's, the re-run noted beside it)"
            if any(RERUN in found.summary for found in (a, b))
            else ""
        )
        out.say(
            f"[yellow]warning:[/] both sides are sweep {a.summary['sweep_id']}{why}: the sweep is compared with itself"
        )
    configs = [None if found.run is None else found.run.params for found in (a, b)]
    if None in configs:
        out.say("[yellow]note:[/] a sweep is not in this store: its config is unknown, only metrics are compared")
    for table in compare_tables(a.summary, b.summary, *configs):
        out.show(table)
    return 0


def status(limit: int, request: RecordRequest, out: Output) -> int:
    from orchestrator.report.record import status_table
    from orchestrator.track.records import sweep_status

    target = tracking_uri(request.tracking_uri)
    record = open_record(target, request.experiment)
    out.show(status_table([sweep_status(run) for run in record.sweeps(limit)], record.uri))
    return 0


def cache(action: str, remove: bool, request: RecordRequest, out: Output) -> int:
    """`ls` (results per kind), `verify` (every sha256; 1 if any failed), `gc` (a dry run unless `remove`)."""
    if action == "ls":
        from orchestrator.report.record import usage_table

        record = open_record(tracking_uri(request.tracking_uri), request.experiment)
        out.show(usage_table(record.usage(), record.uri))
        return 0
    from orchestrator.report.record import garbage_lines, verify_lines
    from orchestrator.track import Artifacts, cache

    store = open_store(tracking_uri(request.tracking_uri), request.experiment)
    if action == "verify":
        checked, failed = cache.verify(store, Artifacts(store))
        out.show("\n".join(verify_lines(checked, failed)))
        return 1 if failed else 0
    garbage = cache.find_garbage(store)
    out.show("\n".join(garbage_lines(garbage, remove)))
    if remove:
        try:
            cache.collect(store, garbage)
        except StoreError as error:
            raise SpecError(str(error)) from None
    return 0
