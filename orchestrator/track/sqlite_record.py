"""A local sqlite MLflow store read directly, read-only, with Python's sqlite3: what the commands that only read the
record (`status`, `cache ls`, `compare`, `report`'s lookup) and a re-run of a finished sweep (finished.py) need,
without importing MLflow. Importing MLflow and its SQLAlchemy store and checking the schema take about 3 s on a
2-core EPYC, ten times the whole answer (BENCHMARKS.md, "Commands that read the record").

It reads five of MLflow's tables (experiments, runs, tags, params, latest_metrics), whose columns have not changed
since MLflow 1.x, and the run artifact folders on this file system. A run whose artifacts are elsewhere (an object
store) raises NotLocal, and the caller asks MLflow instead; tests check that both readings agree."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Optional

from orchestrator.track.errors import StoreError
from orchestrator.track.records import KindUsage, RunRecord, SweepSummaries, pick_sweep
from orchestrator.track.tags import SWEEP

CHUNK = 500  # bound parameters per query, within sqlite's limit
RUN_COLUMNS = "r.run_uuid, r.name, r.status, r.start_time, r.artifact_uri"


class NotLocal(Exception):
    """The store's artifacts are not on this file system."""


def artifact_folder(artifact_uri: str) -> Path:
    if not artifact_uri.startswith("file://"):
        raise NotLocal(artifact_uri)
    return Path(urllib.parse.unquote(urllib.parse.urlparse(artifact_uri).path))


class SqliteRecord(SweepSummaries):
    """One experiment of a sqlite store, opened read-only (StoreError when the file or the experiment is not there)."""

    def __init__(self, path: Path, experiment: str):
        self.path, self.experiment = path, experiment
        self.uri = f"sqlite:///{path}"
        if not path.is_file():
            raise StoreError(f"no MLflow store at {path}")
        self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        found = self.db.execute(
            "SELECT experiment_id, artifact_location FROM experiments WHERE name = ? AND lifecycle_stage = 'active'",
            (experiment,),
        ).fetchall()
        if len(found) != 1:
            self.db.close()
            raise StoreError(f"no experiment {experiment!r} in {self.uri}")
        self.experiment_id, self.artifact_location = str(found[0][0]), found[0][1]

    def __enter__(self) -> SqliteRecord:
        return self

    def __exit__(self, *exc) -> None:
        self.db.close()

    # -- runs -----------------------------------------------------------------------------------------------------
    def runs_tagged(self, key: str, value: Optional[str] = None, status: Optional[str] = None) -> list[RunRecord]:
        """Active runs carrying tag `key` (= `value`), newest first, with their tags (not params or metrics)."""
        query = (
            f"SELECT {RUN_COLUMNS} FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid"
            " WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' AND t.key = ?"
        )
        args: list = [self.experiment_id, key]
        if value is not None:
            query, args = query + " AND t.value = ?", [*args, value]
        if status is not None:
            query, args = query + " AND r.status = ?", [*args, status]
        rows = self.db.execute(query + " ORDER BY r.start_time DESC", args).fetchall()
        tags = self._per_run("tags", [row[0] for row in rows])
        return [RunRecord(*row[:3], row[3] or 0, row[4], tags.get(row[0], {})) for row in rows]

    def _per_run(self, table: str, run_ids: list[str]) -> dict[str, dict]:
        """{run id: {key: value}} from `tags`, `params` or `latest_metrics`."""
        out: dict[str, dict] = {}
        for i in range(0, len(run_ids), CHUNK):
            chunk = run_ids[i : i + CHUNK]
            rows = self.db.execute(
                f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({','.join('?' * len(chunk))})", chunk
            )
            for run_id, key, value in rows:
                out.setdefault(run_id, {})[key] = value
        return out

    def with_numbers(self, runs: Iterable[RunRecord]) -> list[RunRecord]:
        """The runs with their params and latest metrics."""
        runs = list(runs)
        ids = [run.run_id for run in runs]
        params, metrics = self._per_run("params", ids), self._per_run("latest_metrics", ids)
        return [
            replace(
                r, params=params.get(r.run_id, {}), metrics={k: float(v) for k, v in metrics.get(r.run_id, {}).items()}
            )
            for r in runs
        ]

    # -- what the commands ask ------------------------------------------------------------------------------------
    def sweeps(self, limit: Optional[int] = None) -> list[RunRecord]:
        """The sweeps' parent runs, newest first (the newest `limit`), with their params and metrics."""
        return self.with_numbers(self.runs_tagged("node_kind", SWEEP)[:limit])

    def sweep(self, ref: str) -> RunRecord:
        return self.with_numbers([pick_sweep(self.runs_tagged("node_kind", SWEEP), ref, self.uri)])[0]

    def artifact_json(self, run: RunRecord, name: str) -> Optional[dict]:
        """A JSON artifact of the run, or None when it has none."""
        try:
            return json.loads((artifact_folder(run.artifact_uri) / name).read_text())
        except (OSError, ValueError):
            return None

    def usage(self) -> dict[str, KindUsage]:
        """Stored results (FINISHED node runs) per node kind: how many and their artifacts' bytes (top level)."""
        out: dict[str, KindUsage] = {}
        for run in self.runs_tagged("node_key", status="FINISHED"):
            entry = out.setdefault(run.tags.get("node_kind", "?"), KindUsage())
            entry.runs += 1
            folder = artifact_folder(run.artifact_uri)
            entry.bytes += sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
        return dict(sorted(out.items()))
