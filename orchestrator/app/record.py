"""The commands that only read the record: `report` (table, figures and HTML of an earlier sweep), `compare` (two
sweeps' config differences and metric deltas), `side-by-side` (several sweeps' results in one table), `status` (the
sweeps in the store) and `cache ls | verify | gc`. None of them computes a node or imports torch, except `cache
verify`, which loads every checkpoint the way a worker would (torch.load with weights_only) to prove it still can."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from orchestrator.app.output import Output
from orchestrator.app.requests import RecordRequest
from orchestrator.app.tracking import open_store, tracking_uri
from orchestrator.spec import SpecError


@dataclass(frozen=True)
class StoredSweep:
    """A sweep named on the command line: its summary, and its parent run and store when this store has it."""

    summary: dict
    run: Any = None  # mlflow Run
    store: Any = None


def find_sweep(ref: str, request: RecordRequest) -> StoredSweep:
    """A sweep by summary.json path, sweep id or parent run id (SpecError when none is found)."""
    from orchestrator.track import StoreError
    from orchestrator.track.stored_sweeps import read_summary, sweep_run

    if ref.endswith(".json") or Path(ref).is_file():
        summary = read_summary_file(ref)
        try:  # the sweep's run, if this store has it: figures and report go there too
            store = open_store(tracking_uri(request.tracking_uri), request.experiment)
            return StoredSweep(summary, sweep_run(store, summary["sweep_id"]), store)
        except (SpecError, StoreError):
            return StoredSweep(summary)
    store = open_store(tracking_uri(request.tracking_uri), request.experiment)
    try:
        run = sweep_run(store, ref)
        return StoredSweep(read_summary(store, run), run, store)
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
    from orchestrator.track.lineage import SweepLineage

    found = find_sweep(ref, request)
    default = Path(ref).parent / "report" if Path(ref).is_file() else Path("reports") / found.summary["sweep_id"]
    folder = folder or default
    for table in summary_tables(found.summary):
        out.show(table)
    path = write_report(found.summary, folder, test_floor)
    if found.run is not None:
        SweepLineage(found.store).log_report(found.run.info.run_id, folder)
    where = (
        f"; logged under report/ on run {found.run.info.run_id}"
        if found.run is not None
        else " (the sweep is not in this store)"
    )
    out.say(f"report: {path}, figures beside it{where}")
    return 0


def side_by_side(refs: list[str], request: RecordRequest, out: Output) -> int:
    from orchestrator.report.side_by_side import side_by_side_table

    if len(refs) < 2:
        raise SpecError("side-by-side: name two sweeps or more")
    out.show(side_by_side_table([find_sweep(ref, request).summary for ref in refs]))
    return 0


def compare(ref_a: str, ref_b: str, request: RecordRequest, out: Output) -> int:
    from orchestrator.report.compare import compare_tables
    from orchestrator.track.stored_sweeps import sweep_config

    a, b = find_sweep(ref_a, request), find_sweep(ref_b, request)
    configs = [None if found.run is None else sweep_config(found.run) for found in (a, b)]
    if None in configs:
        out.say("[yellow]note:[/] a sweep is not in this store: its config is unknown, only metrics are compared")
    for table in compare_tables(a.summary, b.summary, *configs):
        out.show(table)
    return 0


def status(limit: int, request: RecordRequest, out: Output) -> int:
    from orchestrator.report.record import status_table
    from orchestrator.track.stored_sweeps import sweep_runs, sweep_status

    target = tracking_uri(request.tracking_uri)
    runs = sweep_runs(open_store(target, request.experiment))[:limit]
    out.show(status_table([sweep_status(run) for run in runs], target.uri))
    return 0


def cache(action: str, remove: bool, request: RecordRequest, out: Output) -> int:
    """`ls` (results per kind), `verify` (every sha256; 1 if any failed), `gc` (a dry run unless `remove`)."""
    from orchestrator.report.record import garbage_lines, usage_table, verify_lines
    from orchestrator.track import Artifacts, StoreError, cache

    store = open_store(tracking_uri(request.tracking_uri), request.experiment)
    if action == "ls":
        out.show(usage_table(cache.usage(store, Artifacts(store)), store.uri))
        return 0
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
