"""The record read through MLflow's client, for the commands that only read it (`report`, `compare`, `status`,
`cache ls`) when the store is not a sqlite file on this machine (sqlite_record.py reads that one directly): the same
questions with the same answers (records.py), for a tracking server, Postgres or an object store's artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Optional

from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from orchestrator.track.records import RUN_ID, KindUsage, RunRecord, SweepSummaries, pick_sweep
from orchestrator.track.store import Store
from orchestrator.track.tags import SWEEP


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


def node_runs(store: Store, status: Optional[str] = "FINISHED", view=None) -> list[Run]:
    where = f"attributes.status = '{status}'" if status else ""
    return [r for r in all_runs(store, where, view) if "node_key" in r.data.tags]


def record_of(run: Run) -> RunRecord:
    info, data = run.info, run.data
    return RunRecord(
        info.run_id,
        info.run_name or "",
        info.status,
        info.start_time or 0,
        info.artifact_uri,
        dict(data.tags),
        dict(data.params),
        dict(data.metrics),
    )


class MlflowRecord(SweepSummaries):
    """One experiment of any MLflow store, read through its client."""

    def __init__(self, store: Store):
        self.store, self.uri = store, store.uri

    def sweeps(self, limit: Optional[int] = None) -> list[RunRecord]:
        return [record_of(run) for run in all_runs(self.store, f"tags.node_kind = '{SWEEP}'")][:limit]

    def sweep(self, ref: str) -> RunRecord:
        if RUN_ID.match(ref):
            try:
                run = self.store.client.get_run(ref)
                if run.data.tags.get("node_kind") == SWEEP and run.info.lifecycle_stage == "active":
                    return record_of(run)
            except MlflowException:
                pass
        quoted = ref.replace("'", "")
        return pick_sweep(
            [record_of(r) for r in all_runs(self.store, f"tags.sweep_id = '{quoted}' and tags.node_kind = '{SWEEP}'")],
            ref,
            self.uri,
        )

    def artifact_json(self, run: RunRecord, name: str) -> Optional[dict]:
        """A JSON artifact of the run (downloaded, never recomputed), or None when it has none."""
        with TemporaryDirectory(prefix="unlearn-sweep-record-") as folder:
            try:
                return json.loads(Path(self.store.client.download_artifacts(run.run_id, name, folder)).read_text())
            except (MlflowException, OSError, ValueError):
                return None

    def usage(self) -> dict[str, KindUsage]:
        """Stored results (FINISHED node runs) per node kind: how many and their artifacts' bytes."""
        from orchestrator.track.artifacts import Artifacts

        artifacts, out = Artifacts(self.store), {}
        for run in node_runs(self.store):
            entry = out.setdefault(run.data.tags.get("node_kind", "?"), KindUsage())
            entry.runs += 1
            entry.bytes += sum(artifacts.listing(run.info.run_id, run.info.artifact_uri).values())
        return dict(sorted(out.items()))
