"""The sweeps in the store, as the commands that only read the record (`report`, `compare`, `status`) find them:
a sweep by its id or its parent run's id, its summary.json and config, and where it stands (running, stopped,
finished, failed; nodes done of total; started when, by whom)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Optional

from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from orchestrator.track.store import Store, StoreError
from orchestrator.track.tags import HEARTBEAT, STALE_SECONDS, SWEEP

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def all_runs(store: Store, filter_string: str = "", view=None) -> list[Run]:
    """Every run of the experiment matching the filter, page by page, newest first."""
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = store.client.search_runs(
            [store.experiment_id],
            filter_string,
            run_view_type=view or ViewType.ACTIVE_ONLY,
            max_results=1000,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def sweep_runs(store: Store) -> list[Run]:
    return all_runs(store, f"tags.node_kind = '{SWEEP}'")


def sweep_run(store: Store, ref: str) -> Run:
    """The parent run of a sweep, by sweep id or run id (StoreError names what was looked for)."""
    if RUN_ID.match(ref):
        try:
            run = store.client.get_run(ref)
            if run.data.tags.get("node_kind") == SWEEP:
                return run
        except MlflowException:
            pass
    quoted = ref.replace("'", "")
    found = all_runs(store, f"tags.sweep_id = '{quoted}' and tags.node_kind = '{SWEEP}'")
    if not found:
        raise StoreError(
            f"no sweep {ref!r} in {store.uri}: give a sweep id, a sweep's parent run id or a summary.json path"
        )
    return found[0]


def read_summary(store: Store, run: Run) -> dict:
    """The summary.json logged on the sweep's run (downloaded, never recomputed)."""
    with TemporaryDirectory(prefix="unlearn-sweep-summary-") as folder:
        try:
            path = store.client.download_artifacts(run.info.run_id, "summary.json", folder)
        except (MlflowException, OSError):
            raise StoreError(
                f"sweep run {run.info.run_id} has no summary.json (it never finished writing one)"
            ) from None
        return json.loads(Path(path).read_text())


def sweep_config(run: Run) -> dict[str, str]:
    """The sweep's config as its run's params (flattened, dotted names)."""
    return dict(run.data.params)


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


def sweep_status(run: Run, now: Optional[float] = None) -> SweepStatus:
    tags, metrics = run.data.tags, run.data.metrics
    state = run.info.status.lower()
    if state == "running" and (now or time.time()) - float(tags.get(HEARTBEAT, 0)) > STALE_SECONDS:
        state = "stopped"
    if "nodes_total" in metrics:  # finished writing its summary
        total = int(metrics["nodes_total"])
        done = int(sum(metrics.get(f"nodes_{k}", 0) for k in ("executed", "cached", "failed")))
    else:  # while it runs: the progress it logs
        total = int(tags["progress.total"]) if "progress.total" in tags else None
        done = int(metrics["nodes_done"]) if "nodes_done" in metrics else None
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000))
    return SweepStatus(
        tags.get("sweep_name", run.info.run_name or "?"),
        tags.get("sweep_id", "?"),
        run.info.run_id,
        state,
        done,
        total,
        started,
        tags.get("mlflow.user", "unknown"),
    )
