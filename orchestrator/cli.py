"""unlearn-sweep: plan and run unlearning/relearning sweeps.

  unlearn-sweep run  CONFIG [key=value ...] [--executor local] [--summary summary.json]
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

console = Console(stderr=True)
# Tables go to stdout; when that is a file or a pipe, don't squeeze them into 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)


def _tracker(spec, args):
    from mlflow.exceptions import MlflowException

    from orchestrator.tracking import Tracker

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
    from orchestrator.sweep import Sweep

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
            table.add_row("[yellow]run[/]", node.kind, node.label, node.short, sweep.tracker.why_new(node))
    out.print(table)
    by_kind: dict[str, list[int]] = {}
    for node in sweep.dag:
        by_kind.setdefault(node.kind, [0, 0])[sweep.states[node].status == "cached"] += 1
    out.print(", ".join(f"{kind}: {run} to run, {cached} cached" for kind, (run, cached) in by_kind.items()))
    counts = sweep.counts()
    out.print(f"[bold]{len(sweep.dag.nodes)} nodes: {counts['cached']} cached, {len(sweep.dag.nodes) - counts['cached']} to run")
    return 0


def cmd_run(args) -> int:
    from orchestrator.summary import build_summary, results_table
    from orchestrator.sweep import LocalExecutor, Sweep

    spec = load_spec(args.config, args.overrides)
    tracker = _tracker(spec, args)
    sweep = Sweep(spec, tracker)
    if sweep.data_error:
        raise SpecError(sweep.data_error)
    executor = LocalExecutor(spec.device)
    sweep_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    parent = tracker.start_sweep(spec.name, sweep_id, as_dict(spec), executor.name)
    console.print(f"sweep [bold]{spec.name}[/] ({sweep_id}): {len(sweep.dag.nodes)} nodes, executor {executor.name} "
                  f"on {executor.device}, tracking {tracker.uri}")
    start = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("", total=len(sweep.dag.nodes))

        def on_change(node):
            c = sweep.counts()
            done = c["executed"] + c["cached"] + c["failed"] + c["skipped"]
            now = f"running {node.label}" if sweep.states[node].status == "running" else ""
            progress.update(task, completed=done, description=(
                f"done {c['executed']} cached {c['cached']} failed {c['failed'] + c['skipped']} {now}"))

        ok = False
        try:
            executor.run(sweep, sweep_id, parent, on_change)
            ok = not any(s.status in ("failed", "skipped") for s in sweep.states.values())
        finally:
            summary = build_summary(sweep, sweep_id, executor.name, time.perf_counter() - start)
            _write_atomic(Path(args.summary), json.dumps(summary, indent=1))
            tracker.finish_sweep(parent, summary, ok)
    out.print(results_table(summary))
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
        command.set_defaults(func=func)
        if name == "run":
            command.add_argument("--executor", choices=["local"], default="local")
            command.add_argument("--summary", default="summary.json", help="where to write summary.json")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as error:
        console.print(f"[red]error:[/] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
