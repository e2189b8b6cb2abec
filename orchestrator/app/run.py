"""`unlearn-sweep run`: a sweep file to summary.json, top to bottom (the re-run of a finished sweep was answered
before this module loads: rerun.py).

1. Load the sweep file and open its store: bad input is one SpecError naming the file and key, before any job.
2. Plan it against the store: close the books of sweeps whose driver died, find what is cached; a sweep with
   anything to compute must have its data.
3. Execute: the sweep's parent run, its searches, then every node not found, with progress. A signal (SIGTERM,
   SIGINT) or a store lost for good stops it: the runs in flight end KILLED and everything finished is kept.
4. Conclude, whatever happened: summary.json, the result runs and the report, the parent run's end.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Optional

from orchestrator.app.output import Output
from orchestrator.app.requests import RunRequest
from orchestrator.app.tracking import open_tracker, outputs_that_vanish, refuse_a_store_that_vanishes, tracking_uri
from orchestrator.execute import LocalPool, RunState, Status, run_sweep
from orchestrator.execute.progress import SweepProgress
from orchestrator.execute.stop import GracefulStop
from orchestrator.plan import data_problem, plan_sweep
from orchestrator.report import build_summary, over_seeds_table, results_columns, summary_tables
from orchestrator.report.publish import publish_results, write_atomic
from orchestrator.spec import SpecError, as_dict, load_sweep
from orchestrator.spec.fingerprint import Fingerprint
from orchestrator.track import StoreUnavailable, Tracker, take_over_dead_sweeps
from orchestrator.track.ui import ui_address


def run_sweep_file(request: RunRequest, found: Optional[Fingerprint], began: float, out: Output) -> int:
    """Runs the sweep; returns the exit code (0 done, 1 a node failed, 3 store lost, 128 + signal)."""
    loaded = load_sweep(request.config, list(request.overrides))
    where = loaded.path.name
    if request.executor == "local":  # this machine must have the device; Ray's workers are asked on the cluster
        from orchestrator.execute.local import local_device  # torch: not for a sweep that finished already

        try:
            local_device(loaded.spec.device)
        except SpecError as error:
            raise SpecError(f"{where}: {error}") from None
    target = tracking_uri(request.tracking_uri, where, loaded.spec.tracking.uri)
    refuse_a_store_that_vanishes(target, loaded.spec.tracking, where)  # a Ray Job's store must outlive the job
    tracker = open_tracker(target, loaded.spec.tracking)
    sweep_id = f"{loaded.spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    state = RunState(plan_sweep(loaded.spec, list(loaded.settings)), tracker.artifacts, sweep_id)
    if state.plan.input_error or state.plan.data_error:
        raise SpecError(f"{where}: {state.plan.input_error or state.plan.data_error}")
    # Dead sweeps' claims first: a result they recorded in full but never marked FINISHED then counts as cached.
    for line in take_over_dead_sweeps(tracker.claims, loaded.spec.name if request.resume else None):
        out.say(f"[yellow]taking over:[/] {line}")
    state.refresh()  # what is cached; a sweep with anything to compute must have its data, not just its labels
    if state.counts()[Status.CACHED] < len(state.plan.dag.nodes) and (problem := data_problem(state.plan)):
        raise SpecError(f"{where}: {problem}")
    pool = make_pool(request, tracker, loaded.spec.device)
    ended = SweepRun(state, tracker, pool, request, out, None if found is None else found.digest).execute()
    report_outcome(ended, tracker, request, out)
    return ended.exit_code


def make_pool(request: RunRequest, tracker: Tracker, device: str):
    if request.executor == "ray":
        from orchestrator.execute.ray_pool import RayPool

        try:
            return RayPool(tracker, request.address, request.workers, device)
        except ConnectionError as error:
            raise SpecError(f"--address: cannot connect to a Ray cluster at {request.address}: {error}") from None
    return LocalPool(tracker, device)


@dataclass
class Ended:
    """How a run ended: its final state, summary, parent run and exit code, and a store error if it lost its store."""

    state: RunState
    summary: dict
    parent: str
    exit_code: int
    store_error: Optional[StoreUnavailable] = None


class SweepRun:
    """Executes one planned sweep and concludes it, however it stops."""

    def __init__(self, state, tracker, pool, request: RunRequest, out: Output, fingerprint: Optional[str]):
        self.state, self.tracker, self.pool, self.request, self.out = state, tracker, pool, request, out
        self.fingerprint = fingerprint  # recorded on the parent run, so an identical re-run can reuse this one
        self.retries = request.retries if request.retries is not None else (1 if pool.name == "ray" else 0)
        self.searches: list[dict] = []

    def execute(self) -> Ended:
        spec = self.state.plan.spec
        with GracefulStop(self.out.say) as stop:  # SIGTERM / SIGINT: in-flight runs KILLED, a summary of what finished
            self.parent = self.tracker.lineage.start(
                spec.name, self.state.sweep_id, as_dict(spec), self.pool.name, self.fingerprint
            )
            self.out.say(
                f"sweep [bold]{spec.name}[/] ({self.state.sweep_id}): {len(self.state.plan.dag.nodes)} nodes, "
                f"executor {self.pool.describe()}, tracking {self.tracker.uri}"
            )
            ok, start = False, time.perf_counter()
            try:
                ok = self._compute()
            except StoreUnavailable as error:  # what finished is recorded; a rerun takes over the rest
                stop.lost_store(error)
            finally:
                stop.shield()
                try:  # the record first: `ray job stop` SIGKILLs a driver 3 s after its SIGTERM, and Ray's
                    summary = self._conclude(stop, ok, time.perf_counter() - start)  # shutdown may take longer
                finally:
                    self.pool.close()
        return Ended(self.state, summary, self.parent, stop.exit_code(ok), stop.store_error)

    def _compute(self) -> bool:
        """The searches, then every node; True when no node failed."""
        with SweepProgress(self.state, self.pool.name, self.tracker, self.parent, self.out.console) as progress:
            if self.state.plan.spec.search:  # the searches' best settings join the methods
                from orchestrator.execute.search import run_searches

                args = (self.pool, self.tracker, self.parent, self.retries, progress)
                self.state, self.searches = run_searches(self.state, *args)
                progress.follow(self.state)
            run_sweep(self.state, self.pool, self.tracker, self.parent, self.retries, progress)
        return not any(s.status.lost for s in self.state.nodes.values())

    def _conclude(self, stop: GracefulStop, ok: bool, seconds: float) -> dict:
        """summary.json always; the result runs and the report unless stopped by a signal (`unlearn-sweep report
        SUMMARY` makes them later); the parent run's end, with `nodes.json` when the sweep completed."""
        summary = build_summary(self.state, self.pool.name, seconds)
        if self.searches:
            summary["search"] = self.searches
        write_atomic(self.request.summary, json.dumps(summary, indent=1))
        spec, request = self.state.plan.spec, self.request
        if stop.signum is None:
            dataset = as_dict(spec.dataset)
            stop.record(
                lambda: publish_results(
                    self.tracker, self.parent, summary, dataset, request.report, request.test_floor, self.out.say
                )
            )
        nodes = {n.key: s.run_id for n, s in self.state.nodes.items() if s.run_id} if self.fingerprint else None
        tables = {"over_seeds.json": over_seeds_table(summary), "results.json": results_columns(summary)}
        stop.record(lambda: self.tracker.lineage.finish(self.parent, summary, ok, tables, stop.reason, nodes))
        return summary


def report_outcome(ended: Ended, tracker: Tracker, request: RunRequest, out: Output) -> None:
    """The tables, the failed nodes and where everything is."""
    if ended.store_error is not None:
        out.say(
            f"[red]error:[/] {ended.store_error}; the sweep stopped. Everything it finished is recorded; "
            "run the same command when the server is back to compute the rest"
        )
    for table in summary_tables(ended.summary):
        out.show(table)
    for node, state in ended.state.nodes.items():
        if state.status == Status.FAILED:
            out.say(f"[red]failed[/] {node.label}: {state.error}")
    n = ended.summary["nodes"]
    out.say(
        f"{n['executed']} executed, {n['cached']} cached, {n['failed']} failed in {ended.summary['wall_seconds']:.1f} "
        f"s; summary in {request.summary}; parent run {ended.parent}"
    )
    out.say(f"results in MLflow's runs table: {ui_address(tracker.uri, tracker.store.experiment_id)}")
    if note := outputs_that_vanish(request.summary, request.report):
        out.say(f"[yellow]note:[/] {note}")
