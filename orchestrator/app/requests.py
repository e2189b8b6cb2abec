"""What each command is asked to do, as the CLI parsed it: plain data, no imports of the stages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class SweepRequest:
    """`run` and `plan`: a sweep file, its overrides and the store named on the command line (if any)."""

    config: str
    overrides: tuple[str, ...] = ()
    tracking_uri: Optional[str] = None
    threads: Optional[int] = None  # torch threads of this process (None: the cores it may use)


@dataclass(frozen=True)
class RunRequest(SweepRequest):
    executor: str = "local"  # local | ray
    address: Optional[str] = None  # a Ray cluster; None: start a local one
    workers: Optional[int] = None  # at most this many Ray worker actors
    retries: Optional[int] = None  # re-runs of a node that raised (None: 1 on Ray, 0 locally)
    summary: Path = Path("summary.json")
    report: Optional[Path] = None  # where figures and report.html go; None: no report
    test_floor: Optional[float] = None
    resume: bool = False  # take over this sweep's runs still marked running at once
    record_again: bool = False  # record a sweep of its own even when the same sweep finished in the store


@dataclass(frozen=True)
class RecordRequest:
    """The commands that only read the record: which store and experiment."""

    tracking_uri: Optional[str] = None
    experiment: str = "unlearn-sweep"
