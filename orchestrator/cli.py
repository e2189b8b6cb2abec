"""unlearn-sweep: plan and run unlearning/relearning sweeps.

  unlearn-sweep run  CONFIG [key=value ...] [--executor local|ray] [--address auto|ray://host:port]
                     [--summary summary.json]
  unlearn-sweep plan CONFIG [key=value ...]
  unlearn-sweep report SWEEP [--out DIR]      a sweep id, a parent run id or a summary.json: table, figures, HTML
  unlearn-sweep compare A B                   config differences and metric deltas per method setting
  unlearn-sweep side-by-side A B [C ...]      several sweeps' results in one table, model by model (e.g. one sweep
                                              per forget-set criterion)
  unlearn-sweep status                        the sweeps in the store
  unlearn-sweep cache ls|verify|gc [--yes]    stored results per kind; re-verify every sha256 (a result that
                                              fails is recomputed by the next sweep); remove garbage

Exit codes: 0 done, 1 some node failed or an artifact did not verify (everything finished is kept), 2 bad input
(nothing ran), 3 the tracking server stopped answering mid-run (the sweep stopped; rerun it), 130 / 143 stopped by
SIGINT / SIGTERM (in-flight nodes KILLED, what finished kept; the same command again resumes).

This module parses arguments into a request, calls the command's use case (orchestrator/app) and prints. Each
command's module is imported when the command runs, so the commands that read the record load no torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional

from rich.console import Console

from orchestrator.app.output import Output
from orchestrator.app.requests import RecordRequest, RunRequest, SweepRequest
from orchestrator.spec.errors import SpecError

console = Console(stderr=True)
# Tables go to stdout; when that is a file or a pipe, don't squeeze them into 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
OUTPUT = Output(say=console.print, show=out.print, console=console)


def cmd_run(args) -> int:
    from orchestrator.app.rerun import reusable_fingerprint, reuse_finished

    began = time.perf_counter()
    request = RunRequest(
        **sweep_fields(args),
        executor=args.executor,
        address=args.address,
        workers=args.workers,
        retries=args.retries,
        summary=Path(args.summary),
        report=None if args.no_report else Path(args.report_dir or Path(args.summary).parent / "report"),
        test_floor=args.test_floor,
        resume=args.resume,
        record_again=args.record_again,
    )
    found = reusable_fingerprint(request)
    if found is not None and not request.record_again and reuse_finished(request, found, began, OUTPUT):
        return 0
    configure_torch(request.threads)  # before anything starts torch's thread pool
    from orchestrator.app.run import run_sweep_file

    return run_sweep_file(request, found, began, OUTPUT)


def cmd_plan(args) -> int:
    configure_torch(args.threads)
    from orchestrator.app.plan import plan

    return plan(SweepRequest(**sweep_fields(args)), args.estimate, OUTPUT)


def cmd_report(args) -> int:
    from orchestrator.app.record import report

    return report(args.sweep, Path(args.out) if args.out else None, args.test_floor, record_fields(args), OUTPUT)


def cmd_compare(args) -> int:
    from orchestrator.app.record import compare

    return compare(args.a, args.b, record_fields(args), OUTPUT)


def cmd_side_by_side(args) -> int:
    from orchestrator.app.record import side_by_side

    return side_by_side(args.sweeps, record_fields(args), OUTPUT)


def cmd_status(args) -> int:
    from orchestrator.app.record import status

    return status(args.limit, record_fields(args), OUTPUT)


def cmd_cache(args) -> int:
    if args.action == "verify":  # loads every checkpoint as a worker would
        configure_torch(None)
    from orchestrator.app.record import cache

    return cache(args.action, args.yes, record_fields(args), OUTPUT)


def sweep_fields(args) -> dict:
    return {
        "config": args.config,
        "overrides": tuple(args.overrides),
        "tracking_uri": args.tracking_uri,
        "threads": args.threads,
    }


def record_fields(args) -> RecordRequest:
    return RecordRequest(args.tracking_uri, args.experiment)


def configure_torch(threads: Optional[int]) -> None:
    from workloads.runtime import configure_torch as configure

    configure(threads)  # denormals flushed, exactly the threads of the cores this process may use


# -- the command line -----------------------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """Bad arguments as every other bad input: one line naming the argument, exit 2, before anything starts."""

    def error(self, message: str):
        console.print(f"[red]error:[/] {self.prog}: {message}", soft_wrap=True, highlight=False)
        self.exit(2)


def at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a test accuracy is between 0 and 1, got {value}")
    return value


def check_combinations(parser: argparse.ArgumentParser, args) -> None:
    """What each argument alone accepts but the command cannot honour together, refused as argparse refuses."""
    if getattr(args, "executor", None) == "local":
        for flag, value in (("--address", args.address), ("--workers", args.workers)):
            if value is not None:
                parser.error(f"argument {flag}: only the Ray executor reads it (add --executor ray)")
    if getattr(args, "no_report", False) and args.report_dir is not None:
        parser.error("argument --report-dir: --no-report writes no report")
    summary = getattr(args, "summary", None)
    if summary is not None and Path(summary).is_dir():
        parser.error(
            f"argument --summary: {summary} is a folder; name the file (e.g. {Path(summary) / 'summary.json'})"
        )
    if getattr(args, "command", None) == "side-by-side" and len(args.sweeps) < 2:
        parser.error("the following arguments need two or more: sweeps")


class VersionAction(argparse.Action):
    """`--version`: the package's version and, from a git checkout, its commit (read only when asked)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from orchestrator.version import git_commit, package_version

        commit = git_commit()
        print(f"unlearn-sweep {package_version()}" + (f" (git {commit[:12]})" if commit else ""))
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
            type=at_least(1),
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
            _run_options(command)


def _run_options(command) -> None:
    command.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: one node at a time in this process; ray: worker actors on a Ray cluster",
    )
    command.add_argument("--address", default=None, help="Ray cluster: auto, ray://host:10001 (default: a local Ray)")
    command.add_argument("--workers", type=at_least(1), default=None, help="at most this many Ray worker actors")
    command.add_argument(
        "--retries", type=at_least(0), default=None, help="re-runs of a node that raised (default: 1 on ray, 0 locally)"
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
        type=fraction,
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
    side = add("side-by-side", cmd_side_by_side, "several sweeps' results in one table, model by model")
    side.add_argument("sweeps", nargs="+", help="sweep ids, parent run ids or summary.json files, two or more")
    status = add(
        "status", cmd_status, "the sweeps in the store: running, finished, failed; nodes done; started by whom"
    )
    status.add_argument("--limit", type=at_least(1), default=20, help="the newest this many sweeps (default 20)")
    cache = add(
        "cache", cmd_cache, "the stored results: ls (per kind), verify (every sha256), gc (deleted claims, orphans)"
    )
    cache.add_argument("action", choices=["ls", "verify", "gc"])
    cache.add_argument("--yes", action="store_true", help="gc: remove what it lists (default: a dry run)")


def parser() -> argparse.ArgumentParser:
    parser = Parser(prog="unlearn-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    _sweep_commands(commands)
    _record_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        command_line = parser()
        args = command_line.parse_args(argv)
        check_combinations(command_line, args)
    except SystemExit as stop:  # bad arguments return 2 as bad sweeps do; --help and --version exit as argparse's
        if stop.code != 2:
            raise
        return 2
    # MLflow announces every sqlite store it creates or migrates; the sweep's own lines say what matters.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except SpecError as error:
        console.print("[red]error:[/] ", end="")
        # One line however long; no markup in it.
        console.print(str(error), soft_wrap=True, markup=False, highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
