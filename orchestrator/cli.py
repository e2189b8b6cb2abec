"""unlearn-sweep: plan and run unlearning/relearning sweeps.

  unlearn-sweep run  CONFIG [key=value ...] [--executor local|ray] [--address auto|ray://host:port] [--summary summary.json]
  unlearn-sweep plan CONFIG [key=value ...]

Exit codes: 0 done, 1 some node failed (everything finished is kept), 2 bad input (nothing ran).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.spec import SpecError, as_dict, load_spec
from workloads.runtime import configure_torch

console = Console(stderr=True)
# Tables go to stdout; when that is a file or a pipe, don't squeeze them into 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)


def _tracker(spec, args):
    from mlflow.exceptions import MlflowException

    from orchestrator.track import Tracker

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec.tracking.uri
    try:
        return Tracker(uri, spec.tracking.experiment, spec.tracking.artifact_location)
    except (MlflowException, OSError) as error:
        raise SpecError(f"tracking: cannot use MLflow tracking store {uri}: {str(error).splitlines()[0]}") from None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def cmd_plan(args) -> int:
    from orchestrator.plan import Sweep

    spec = load_spec(args.config, args.overrides)
    sweep = Sweep(spec, _tracker(spec, args))
    if sweep.data_error:
        console.print(f"[yellow]note:[/] {sweep.data_error}; `run` needs it (keys that depend on the data stay unknown)")
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
    out.print(f"[bold]{len(sweep.dag.nodes)} nodes: {counts['cached']} cached, {len(sweep.dag.nodes) - counts['cached']} to run")
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
    table.add_row("[bold]total", str(sum(k.nodes for k in found.kinds.values())),
                  f"{sum(k.train_steps for k in found.kinds.values()):,}", f"[bold]{found.seconds / 3600:.3f}")
    out.print(table)
    out.print(f"about {found.seconds / 3600:.2f} device-hours on this machine, one node at a time "
              "(step costs measured here once per model and batch size; see BENCHMARKS.md for other devices)")


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
    from orchestrator.execute import run_sweep
    from orchestrator.plan import Sweep
    from orchestrator.report import build_summary, over_seeds_table, results_table, seeds_table

    spec = load_spec(args.config, args.overrides)
    tracker = _tracker(spec, args)
    sweep_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    sweep = Sweep(spec, tracker, sweep_id)
    if sweep.data_error:
        raise SpecError(sweep.data_error)
    sweep.refresh()  # what is cached; a sweep with anything to compute must have its data, not just its labels
    if sweep.counts()["cached"] < len(sweep.dag.nodes) and sweep.check_data():
        raise SpecError(sweep.data_error)
    pool = make_pool(args, tracker, spec)
    retries = args.retries if args.retries is not None else (1 if pool.name == "ray" else 0)
    parent = tracker.sweeps.start(spec.name, sweep_id, as_dict(spec), pool.name)
    console.print(f"sweep [bold]{spec.name}[/] ({sweep_id}): {len(sweep.dag.nodes)} nodes, executor {pool.describe()}, "
                  f"tracking {tracker.uri}")
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("", total=len(sweep.dag.nodes))

        def on_change(node):
            c = sweep.counts()
            done = c["executed"] + c["cached"] + c["failed"] + c["skipped"]
            now = f" running {c['running']}" + (f" waiting on another sweep {c['waiting']}" if c["waiting"] else "")
            if pool.name == "local" and sweep.states[node].status == "running":
                now = f" running {node.label}"
            progress.update(task, completed=done, description=(
                f"done {c['executed']} cached {c['cached']} failed {c['failed'] + c['skipped']}{now}"))

        ok, searches = False, []
        try:
            if spec.search:  # the searches' best settings join the methods; their trials are already in the store
                from orchestrator.execute.search import run_searches

                sweep, searches = run_searches(sweep, pool, sweep_id, parent, retries, on_change)
                progress.update(task, total=len(sweep.dag.nodes))
            run_sweep(sweep, pool, sweep_id, parent, retries, on_change)
            ok = not any(s.status in ("failed", "skipped") for s in sweep.states.values())
        finally:
            pool.close()
            summary = build_summary(sweep, sweep_id, pool.name, time.perf_counter() - start)
            if searches:
                summary["search"] = searches
            _write_atomic(Path(args.summary), json.dumps(summary, indent=1))
            tracker.sweeps.finish(parent, summary, ok, {"over_seeds.json": over_seeds_table(summary)})
    out.print(results_table(summary))
    if seeds_table(summary) is not None:
        out.print(seeds_table(summary))
    for node, state in sweep.states.items():
        if state.status == "failed":
            console.print(f"[red]failed[/] {node.label}: {state.error}")
    n = summary["nodes"]
    console.print(f"{n['executed']} executed, {n['cached']} cached, {n['failed']} failed in {summary['wall_seconds']:.1f} s; "
                  f"summary in {args.summary}; parent run {parent}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unlearn-sweep", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (("run", cmd_run, "plan, then execute a sweep"), ("plan", cmd_plan, "show the DAG and what is cached")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("config", help="sweep YAML file")
        command.add_argument("overrides", nargs="*", help="key=value overrides, e.g. methods.0.hparams.lr=0.01")
        command.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, then the sweep's tracking.uri)")
        command.add_argument("--threads", type=int, default=None,
                             help="torch threads of this process, which runs the local executor's nodes "
                                  "(default: the cores it may use; Ray workers use their num_cpus)")
        command.set_defaults(func=func)
        if name == "plan":
            command.add_argument("--no-estimate", dest="estimate", action="store_false",
                                 help="skip the compute estimate (it times a few steps of each model the first time)")
        if name == "run":
            command.add_argument("--executor", choices=["local", "ray"], default="local",
                                 help="local: one node at a time in this process; ray: worker actors on a Ray cluster")
            command.add_argument("--address", default=None,
                                 help="Ray cluster: auto, ray://host:10001 (default: start a local Ray)")
            command.add_argument("--workers", type=int, default=None, help="at most this many Ray worker actors")
            command.add_argument("--retries", type=int, default=None,
                                 help="re-runs of a node that raised (default: 1 on ray, 0 locally)")
            command.add_argument("--summary", default="summary.json", help="where to write summary.json")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        console.print(f"[red]error:[/] --threads must be at least 1, got {args.threads}")
        return 2
    configure_torch(args.threads)  # before any torch op starts the thread pool
    try:
        return args.func(args)
    except SpecError as error:
        console.print(f"[red]error:[/] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
