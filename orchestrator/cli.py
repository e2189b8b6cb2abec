"""unlearn-sweep: plan and run unlearning/relearning sweeps.

  unlearn-sweep run  CONFIG [key=value ...] [--executor local|ray] [--address auto|ray://host:port]
                     [--summary summary.json]
  unlearn-sweep plan CONFIG [key=value ...]
  unlearn-sweep report SWEEP [--out DIR]      a sweep id, a parent run id or a summary.json: table, figures, HTML
  unlearn-sweep compare A B                   config differences and metric deltas per method setting
  unlearn-sweep status                        the sweeps in the store
  unlearn-sweep cache ls|verify|gc [--yes]    stored results per kind; re-verify every sha256 (a result that
                                              fails is recomputed by the next sweep); remove garbage

Exit codes: 0 done, 1 some node failed or an artifact did not verify (everything finished is kept), 2 bad input
(nothing ran), 3 the tracking server stopped answering mid-run (the sweep stopped; rerun it), 130 / 143 stopped by
SIGINT / SIGTERM (in-flight nodes KILLED, what finished kept; the same command again resumes).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table

from orchestrator.spec import SpecError, as_dict

console = Console(stderr=True)
# Tables go to stdout; when that is a file or a pipe, don't squeeze them into 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)


def _tracker(spec, args):
    from mlflow.exceptions import MlflowException

    from orchestrator.track import StoreUnavailable, Tracker

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec.tracking.uri
    try:
        return Tracker(uri, spec.tracking.experiment, spec.tracking.artifact_location)
    except StoreUnavailable as error:  # named by where the URI came from, so the user knows what to fix
        source = (
            "--tracking-uri"
            if args.tracking_uri
            else "MLFLOW_TRACKING_URI"
            if os.environ.get("MLFLOW_TRACKING_URI")
            else f"{Path(args.config).name}: tracking.uri"
        )
        raise SpecError(f"{source}: {error}") from None
    except (MlflowException, OSError) as error:
        raise SpecError(f"tracking: cannot use MLflow tracking store {uri}: {str(error).splitlines()[0]}") from None


def cmd_plan(args) -> int:
    from orchestrator.plan import Sweep
    from orchestrator.plan.sharing import sharing
    from orchestrator.spec import load_spec

    spec = load_spec(args.config, args.overrides)
    sweep = Sweep(spec, _tracker(spec, args))
    if sweep.input_error:
        raise SpecError(f"{Path(args.config).name}: {sweep.input_error}")
    if sweep.data_error:
        console.print(
            f"[yellow]note:[/] {sweep.data_error}; `run` needs it (keys that depend on the data stay unknown)"
        )
    sweep.refresh()
    table = Table(title=f"plan for sweep {spec.name}")
    for column in ("status", "kind", "node", "key", "why it runs"):
        table.add_column(column)
    for node in sweep.dag:
        if sweep.states[node].status == "cached":
            table.add_row("[green]cached[/]", node.kind, node.label, node.short, "")
        elif node.key is None:
            table.add_row("[yellow]run[/]", node.kind, node.label, "-", "key known once its inputs exist")
        else:
            table.add_row("[yellow]run[/]", node.kind, node.label, node.short, sweep.tracker.sweeps.why_new(node))
    out.print(table)
    by_kind: dict[str, list[int]] = {}
    for node in sweep.dag:
        by_kind.setdefault(node.kind, [0, 0])[sweep.states[node].status == "cached"] += 1
    out.print(", ".join(f"{kind}: {run} to run, {cached} cached" for kind, (run, cached) in by_kind.items()))
    counts = sweep.counts()
    out.print(
        f"[bold]{len(sweep.dag.nodes)} nodes: {counts['cached']} cached, "
        f"{len(sweep.dag.nodes) - counts['cached']} to run"
    )
    for line in sharing(sweep.dag):
        out.print(f"shared: {line}")
    to_run = [node for node in sweep.dag if sweep.states[node].status != "cached"]
    if args.estimate and to_run and sweep.labels is not None:
        print_estimate(sweep, to_run)
    return 0


def print_estimate(sweep, to_run) -> None:
    from orchestrator.plan.cost import estimate
    from workloads.train import pick_device

    found = estimate(to_run, sweep.labels, pick_device(sweep.spec.device))
    table = Table(title=f"estimated compute of the nodes to run, on {found.machine}")
    for column in ("kind", "nodes", "train steps", "hours"):
        table.add_column(column, justify="right" if column != "kind" else "left")
    for kind, k in found.kinds.items():
        table.add_row(kind, str(k.nodes), f"{k.train_steps:,}", f"{k.seconds / 3600:.3f}")
    table.add_row(
        "[bold]total",
        str(sum(k.nodes for k in found.kinds.values())),
        f"{sum(k.train_steps for k in found.kinds.values()):,}",
        f"[bold]{found.seconds / 3600:.3f}",
    )
    out.print(table)
    out.print(
        f"about {found.seconds / 3600:.2f} device-hours on this machine, one node at a time "
        "(step costs measured here once per model and batch size; see BENCHMARKS.md for other devices)"
    )


def make_pool(args, tracker, spec):
    if args.executor == "ray":
        from orchestrator.execute.ray_pool import RayPool

        try:
            return RayPool(tracker, args.address, args.workers)
        except ConnectionError as error:
            raise SpecError(f"--address: cannot connect to a Ray cluster at {args.address}: {error}") from None
    from orchestrator.execute import LocalPool

    return LocalPool(tracker, spec.device)


def cmd_run(args) -> int:
    from orchestrator.spec.fingerprint import fingerprint

    began = time.perf_counter()
    found = fingerprint(args.config, args.overrides)
    key = None if found is None or found.searches else found.digest  # a search's trials are outside the DAG: no reuse
    if key is not None and not args.record_again:
        from orchestrator.report.reuse import reuse_finished

        uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or found.tracking.uri
        if reuse_finished(
            uri, found, Path(args.summary), _report_folder(args), args.test_floor, began, console.print, out.print
        ):
            return 0
    from workloads.runtime import configure_torch

    configure_torch(args.threads)  # before any torch op starts the thread pool

    from orchestrator.execute import run_sweep
    from orchestrator.execute.progress import SweepProgress
    from orchestrator.execute.stop import GracefulStop
    from orchestrator.plan import Sweep
    from orchestrator.report import build_summary, over_seeds_table, results_columns, summary_tables
    from orchestrator.report.publish import publish_results, write_atomic
    from orchestrator.spec import load_spec
    from orchestrator.track import StoreUnavailable, take_over_dead_sweeps
    from orchestrator.track.ui import ui_address

    spec = load_spec(args.config, args.overrides)
    tracker = _tracker(spec, args)
    sweep_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    sweep = Sweep(spec, tracker, sweep_id)
    if sweep.input_error or sweep.data_error:
        raise SpecError(f"{Path(args.config).name}: {sweep.input_error or sweep.data_error}")
    # Dead sweeps' claims first: a result they recorded in full but never marked FINISHED then counts as cached.
    for line in take_over_dead_sweeps(tracker.claims, spec.name if args.resume else None):
        console.print(f"[yellow]taking over:[/] {line}")
    sweep.refresh()  # what is cached; a sweep with anything to compute must have its data, not just its labels
    if sweep.counts()["cached"] < len(sweep.dag.nodes) and sweep.check_data():
        raise SpecError(f"{Path(args.config).name}: {sweep.data_error}")
    pool = make_pool(args, tracker, spec)
    retries = args.retries if args.retries is not None else (1 if pool.name == "ray" else 0)
    with GracefulStop(console.print) as stop:  # SIGTERM / SIGINT: in-flight runs KILLED, a summary of what finished
        parent = tracker.sweeps.start(spec.name, sweep_id, as_dict(spec), pool.name, key)
        console.print(
            f"sweep [bold]{spec.name}[/] ({sweep_id}): {len(sweep.dag.nodes)} nodes, executor {pool.describe()}, "
            f"tracking {tracker.uri}"
        )
        ok, searches, start = False, [], time.perf_counter()
        try:
            with SweepProgress(sweep, pool.name, tracker, parent, console) as progress:
                if spec.search:  # the searches' best settings join the methods; their trials are already in the store
                    from orchestrator.execute.search import run_searches

                    sweep, searches = run_searches(sweep, pool, sweep_id, parent, retries, progress)
                    progress.follow(sweep)
                run_sweep(sweep, pool, sweep_id, parent, retries, progress)
                ok = not any(s.status in ("failed", "skipped") for s in sweep.states.values())
        except StoreUnavailable as error:  # what finished is recorded; a rerun takes over the rest
            stop.lost_store(error)
        finally:
            stop.shield()
            pool.close()
            summary = build_summary(sweep, sweep_id, pool.name, time.perf_counter() - start)
            if searches:
                summary["search"] = searches
            write_atomic(Path(args.summary), json.dumps(summary, indent=1))
            if stop.signum is None:  # a stopped sweep's report can be made later: `unlearn-sweep report SUMMARY`
                stop.record(
                    lambda: publish_results(
                        tracker,
                        parent,
                        summary,
                        as_dict(spec.dataset),
                        _report_folder(args),
                        args.test_floor,
                        console.print,
                    )
                )
            nodes = {node.key: state.run_id for node, state in sweep.states.items() if state.run_id} if key else None
            stop.record(
                lambda: tracker.sweeps.finish(
                    parent,
                    summary,
                    ok,
                    {"over_seeds.json": over_seeds_table(summary), "results.json": results_columns(summary)},
                    stop.reason,
                    nodes,
                )
            )
    if stop.store_error is not None:
        console.print(
            f"[red]error:[/] {stop.store_error}; the sweep stopped. Everything it finished is recorded; "
            "run the same command when the server is back to compute the rest"
        )
    for table in summary_tables(summary):
        out.print(table)
    for node, state in sweep.states.items():
        if state.status == "failed":
            console.print(f"[red]failed[/] {node.label}: {state.error}")
    n = summary["nodes"]
    console.print(
        f"{n['executed']} executed, {n['cached']} cached, {n['failed']} failed in {summary['wall_seconds']:.1f} s; "
        f"summary in {args.summary}; parent run {parent}"
    )
    console.print(f"results in MLflow's runs table: {ui_address(tracker.uri, tracker.store.experiment_id)}")
    return stop.exit_code(ok)


def _report_folder(args) -> Optional[Path]:
    return None if args.no_report else Path(args.report_dir or Path(args.summary).parent / "report")


# -- commands that read the record ----------------------------------------------------------------------------------
def _store(args):
    """The store a reading command looks at, as it is: never created; a missing one is bad input."""
    from mlflow.exceptions import MlflowException

    from orchestrator.track import Store, StoreError, StoreUnavailable

    uri = _uri(args)
    try:
        return Store.existing(uri, args.experiment)
    except (StoreError, StoreUnavailable) as error:
        raise SpecError(f"tracking: {error}") from None
    except (MlflowException, OSError) as error:
        raise SpecError(f"tracking: cannot use MLflow tracking store {uri}: {str(error).splitlines()[0]}") from None


def _sweep(ref: str, args):
    """(summary, the sweep's parent run or None, the store or None) from a summary.json path, a sweep id or a run id."""
    from orchestrator.track import StoreError
    from orchestrator.track.sweeps import find_sweep, read_summary

    if ref.endswith(".json") or Path(ref).is_file():
        try:
            summary = json.loads(Path(ref).read_text())
            if not isinstance(summary, dict) or not {"sweep_id", "results"} <= summary.keys():
                raise ValueError("no sweep_id or results")
        except (OSError, ValueError) as error:
            raise SpecError(f"{ref}: not a readable summary.json ({type(error).__name__}: {error})") from None
        try:  # the sweep's run, if this store has it: figures and report go there too
            store = _store(args)
            return summary, find_sweep(store, summary["sweep_id"]), store
        except (SpecError, StoreError):
            return summary, None, None
    store = _store(args)
    try:
        run = find_sweep(store, ref)
        return read_summary(store, run), run, store
    except StoreError as error:
        raise SpecError(str(error)) from None


def cmd_report(args) -> int:
    from orchestrator.report import summary_tables
    from orchestrator.report.html import write_report
    from orchestrator.track import SweepRuns

    summary, run, store = _sweep(args.sweep, args)
    default = (
        Path(args.sweep).parent / "report" if Path(args.sweep).is_file() else Path("reports") / summary["sweep_id"]
    )
    folder = Path(args.out) if args.out else default
    for table in summary_tables(summary):
        out.print(table)
    path = write_report(summary, folder, args.test_floor)
    if run is not None:
        SweepRuns(store).log_report(run.info.run_id, folder)
    where = (
        f"; logged under report/ on run {run.info.run_id}" if run is not None else " (the sweep is not in this store)"
    )
    console.print(f"report: {path}, figures beside it{where}")
    return 0


def cmd_compare(args) -> int:
    from orchestrator.report.compare import compare_tables
    from orchestrator.track.sweeps import sweep_config

    (a, run_a, _), (b, run_b, _) = _sweep(args.a, args), _sweep(args.b, args)
    configs = [None if run is None else sweep_config(run) for run in (run_a, run_b)]
    if None in configs:
        console.print("[yellow]note:[/] a sweep is not in this store: its config is unknown, only metrics are compared")
    for table in compare_tables(a, b, *configs):
        out.print(table)
    return 0


def _uri(args) -> str:
    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def cmd_status(args) -> int:
    from orchestrator.report.record import status_table
    from orchestrator.track.sweeps import sweep_runs, sweep_status

    out.print(status_table([sweep_status(run) for run in sweep_runs(_store(args))[: args.limit]], _uri(args)))
    return 0


def cmd_cache(args) -> int:
    from orchestrator.report.record import garbage_lines, usage_table, verify_lines
    from orchestrator.track import Artifacts, StoreError, cache

    store = _store(args)
    if args.action == "ls":
        out.print(usage_table(cache.usage(store, Artifacts(store)), store.uri))
        return 0
    if args.action == "verify":
        checked, failed = cache.verify(store, Artifacts(store))
        out.print("\n".join(verify_lines(checked, failed)))
        return 1 if failed else 0
    garbage = cache.find_garbage(store)
    out.print("\n".join(garbage_lines(garbage, args.yes)))
    if args.yes:
        try:
            cache.collect(store, garbage)
        except StoreError as error:
            raise SpecError(str(error)) from None
    return 0


# -- the command line -----------------------------------------------------------------------------------------------
class VersionAction(argparse.Action):
    """`--version`: the package's version and, from a git checkout, its commit (read only when asked)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        from orchestrator.track.store import git_commit

        try:
            found = version("unlearn-sweep")
        except PackageNotFoundError:
            found = "unknown (not installed)"
        commit = git_commit()
        print(f"unlearn-sweep {found}" + (f" (git {commit[:12]})" if commit else ""))
        parser.exit(0)


def _sweep_commands(commands) -> None:
    for name, func, help_text in (
        ("run", cmd_run, "plan, then execute a sweep"),
        ("plan", cmd_plan, "show the DAG and what is cached"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("config", help="sweep YAML file")
        command.add_argument("overrides", nargs="*", help="key=value overrides, e.g. methods.0.hparams.lr=0.01")
        command.add_argument(
            "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, then the sweep's tracking.uri)"
        )
        command.add_argument(
            "--threads",
            type=int,
            default=None,
            help="torch threads of this process, which runs the local executor's nodes "
            "(default: the cores it may use; Ray workers use their num_cpus)",
        )
        command.set_defaults(func=func)
        if name == "plan":
            command.add_argument(
                "--no-estimate",
                dest="estimate",
                action="store_false",
                help="skip the compute estimate (it times a few steps of each model the first time)",
            )
        if name == "run":
            command.add_argument(
                "--executor",
                choices=["local", "ray"],
                default="local",
                help="local: one node at a time in this process; ray: worker actors on a Ray cluster",
            )
            command.add_argument(
                "--address", default=None, help="Ray cluster: auto, ray://host:10001 (default: start a local Ray)"
            )
            command.add_argument("--workers", type=int, default=None, help="at most this many Ray worker actors")
            command.add_argument(
                "--retries", type=int, default=None, help="re-runs of a node that raised (default: 1 on ray, 0 locally)"
            )
            command.add_argument("--summary", default="summary.json", help="where to write summary.json")
            command.add_argument(
                "--resume",
                action="store_true",
                help="take over the runs of earlier runs of this sweep (same name) still marked running, "
                "without waiting for their heartbeats to go stale: they are dead (another machine)",
            )
            command.add_argument(
                "--report-dir", default=None, help="figures and report.html (default: report/ beside the summary)"
            )
            command.add_argument("--no-report", action="store_true", help="write no figures or HTML report")
            command.add_argument(
                "--record-again",
                action="store_true",
                help="record a new sweep (parent run, links to its cached nodes, result runs) even when the "
                "same sweep already finished in this store (default: reuse that one, recording nothing)",
            )
            _floor_option(command)


def _floor_option(command) -> None:
    command.add_argument(
        "--test-floor",
        type=float,
        default=None,
        help="test accuracy (0-1) a model needs to rank among the usable ones in the report "
        "(default: 90%% of the retrained control's)",
    )


def _record_commands(commands) -> None:
    def add(name: str, func, help_text: str):
        command = commands.add_parser(name, help=help_text)
        command.add_argument(
            "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, then sqlite:///mlflow.db)"
        )
        command.add_argument("--experiment", default="unlearn-sweep", help="MLflow experiment (default: unlearn-sweep)")
        command.set_defaults(func=func)
        return command

    report = add("report", cmd_report, "table, figures and HTML report of an earlier sweep, recomputing nothing")
    report.add_argument("sweep", help="a sweep id, a sweep's parent run id, or a summary.json")
    report.add_argument(
        "--out", default=None, help="output folder (default: report/ beside a summary.json, else reports/<sweep id>)"
    )
    _floor_option(report)
    compare = add("compare", cmd_compare, "config differences and metric deltas between two sweeps")
    compare.add_argument("a", help="a sweep id, parent run id or summary.json")
    compare.add_argument("b", help="a sweep id, parent run id or summary.json")
    status = add(
        "status", cmd_status, "the sweeps in the store: running, finished, failed; nodes done; started by whom"
    )
    status.add_argument("--limit", type=int, default=20, help="the newest this many sweeps (default 20)")
    cache = add(
        "cache", cmd_cache, "the stored results: ls (per kind), verify (every sha256), gc (deleted claims, orphans)"
    )
    cache.add_argument("action", choices=["ls", "verify", "gc"])
    cache.add_argument("--yes", action="store_true", help="gc: remove what it lists (default: a dry run)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unlearn-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    _sweep_commands(commands)
    _record_commands(commands)
    args = parser.parse_args(argv)
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        console.print(f"[red]error:[/] --threads must be at least 1, got {threads}", soft_wrap=True)
        return 2
    if args.func is not cmd_run:  # `run` first looks for its sweep finished, which needs no torch
        from workloads.runtime import configure_torch

        configure_torch(threads)  # before any torch op starts the thread pool
    # MLflow announces every sqlite store it creates or migrates; the sweep's own lines say what matters.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except SpecError as error:
        console.print("[red]error:[/] ", end="")
        console.print(
            str(error), soft_wrap=True, markup=False, highlight=False
        )  # one line however long; no markup in it
        return 2


if __name__ == "__main__":
    sys.exit(main())
