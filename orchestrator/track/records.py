"""The record as the commands that only read it see it, whichever way it was read (MLflow's client in
stored_sweeps.py, or a local sqlite store directly in sqlite_record.py): a run's facts, a sweep's state, the stored
results per node kind, and finding a sweep by its id or its parent run's id. Light: no MLflow import."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Optional

from orchestrator.track.errors import StoreError
from orchestrator.track.tags import HEARTBEAT, STALE_SECONDS

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
SUMMARY = "summary.json"  # artifact of the sweep's parent run


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    status: str  # RUNNING | FINISHED | FAILED | KILLED | SCHEDULED
    start_time: int  # ms since the epoch
    artifact_uri: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # the latest value of each


@dataclass
class KindUsage:
    runs: int = 0
    bytes: int = 0


class SweepSummaries:
    """What both readers of the record (sqlite_record.py, stored_sweeps.py) share: a sweep's summary from its run."""

    def artifact_json(self, run: RunRecord, name: str) -> Optional[dict]:
        raise NotImplementedError

    def summary(self, run: RunRecord) -> dict:
        found = self.artifact_json(run, SUMMARY)
        if found is None:
            raise StoreError(f"sweep run {run.run_id} has no summary.json (it never finished writing one)")
        return found


def pick_sweep(sweeps: list[RunRecord], ref: str, uri: str) -> RunRecord:
    """The parent run of a sweep among `sweeps` (newest first), by run id or sweep id (StoreError names what was
    looked for)."""
    for run in sweeps:
        if run.run_id == ref if RUN_ID.match(ref) else run.tags.get("sweep_id") == ref:
            return run
    raise StoreError(f"no sweep {ref!r} in {uri}: give a sweep id, a sweep's parent run id or a summary.json path")


@dataclass
class SweepStatus:
    name: str
    sweep_id: str
    run_id: str
    state: str  # running | stopped (its driver went silent) | finished | failed | killed
    done: Optional[int]
    total: Optional[int]
    started: str
    user: str


def sweep_status(run: RunRecord, now: Optional[float] = None) -> SweepStatus:
    tags, metrics = run.tags, run.metrics
    state = run.status.lower()
    if state == "running" and (now or time.time()) - float(tags.get(HEARTBEAT, 0)) > STALE_SECONDS:
        state = "stopped"
    if "nodes_total" in metrics:  # finished writing its summary
        total = int(metrics["nodes_total"])
        done = int(sum(metrics.get(f"nodes_{k}", 0) for k in ("executed", "cached", "failed")))
    else:  # while it runs: the progress it logs
        total = int(tags["progress.total"]) if "progress.total" in tags else None
        done = int(metrics["nodes_done"]) if "nodes_done" in metrics else None
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.start_time / 1000))
    return SweepStatus(
        tags.get("sweep_name", run.name or "?"),
        tags.get("sweep_id", "?"),
        run.run_id,
        state,
        done,
        total,
        started,
        tags.get("mlflow.user", "unknown"),
    )
