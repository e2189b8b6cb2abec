"""An identical sweep that already finished in this store, so that running it again computes and records nothing.

Its parent run carries the same fingerprint (orchestrator/spec/fingerprint.py), ended FINISHED, and logged
`nodes.json`, the key and run of every node it used. It still stands only if each of those runs is still the result
of its key by the one rule every lookup follows (results.py): FINISHED and not deleted (`cache verify` turns a bad
one FAILED), no newer run of the key holding the result ahead of it, every file of its manifest there with its
recorded size and result.json matching its sha256. Anything else reads as "not found", and the run plans in full.

A sqlite store whose artifacts are on this file system (the embedded default) is read with Python's sqlite3
(sqlite_record.py): importing MLflow and its SQLAlchemy store and checking the schema take about 3 s on a 2-core
EPYC, ten times the whole answer. An error there is "not found" too, and tests/test_rerun.py checks that this reading
and `Artifacts.find` agree. Other stores are asked through MLflow, with `Artifacts.find` itself."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Optional

from orchestrator.track.errors import StoreError
from orchestrator.track.records import SUMMARY
from orchestrator.track.results import (
    FINISHED,
    MANIFEST,
    RESULT,
    files_complete,
    first_result,
    manifest_entries,
    verifies,
)
from orchestrator.track.sqlite_record import CHUNK, NotLocal, SqliteRecord, artifact_folder

FINGERPRINT = "sweep.fingerprint"  # tag of the sweep's parent run
NODES = "nodes.json"  # artifact of the sweep's parent run: {node key: the run holding its result}


@dataclass
class FinishedSweep:
    run_id: str
    sweep_id: str
    experiment_id: str
    summary: dict
    report: Optional[Path]  # its report/ artifacts, when they are on this file system


def find_finished(uri: str, experiment: str, fingerprint: str) -> Optional[FinishedSweep]:
    if uri.startswith("sqlite:///") and "?" not in uri:
        try:
            return LocalRecord(Path(uri.removeprefix("sqlite:///")), experiment).finished(fingerprint)
        except NotLocal:
            pass  # artifacts in an object store: MLflow reads them
        except (StoreError, sqlite3.Error, OSError, ValueError, KeyError, TypeError):
            return None
    return through_mlflow(uri, experiment, fingerprint)


class LocalRecord:
    """MLflow's sqlite tables and artifact folders, read directly (sqlite_record.py)."""

    def __init__(self, path: Path, experiment: str):
        self.path, self.experiment = path, experiment

    def finished(self, fingerprint: str) -> Optional[FinishedSweep]:
        if not self.path.is_file():
            return None
        with SqliteRecord(self.path, self.experiment) as record:
            parents = record.runs_tagged(FINGERPRINT, fingerprint, "FINISHED")
            if not parents:
                return None
            parent = parents[0]
            folder = artifact_folder(parent.artifact_uri)
            summary, nodes = (json.loads((folder / name).read_text()) for name in (SUMMARY, NODES))
            if summary["nodes"]["failed"] or not all(map(self._still_found, self._lookups(nodes, record))):
                return None
        report = folder / "report"
        sweep_id = parent.tags["sweep_id"]
        return FinishedSweep(
            parent.run_id, sweep_id, record.experiment_id, summary, report if report.is_dir() else None
        )

    def _lookups(self, nodes: dict[str, str], record: SqliteRecord) -> list[tuple[str, list[tuple[str, str]]]]:
        """Per key: the run the sweep recorded and the key's FINISHED runs, newest first (run id, artifact URI)."""
        found: dict[str, list[tuple[int, str, str]]] = {key: [] for key in nodes}
        keys = list(nodes)
        for i in range(0, len(keys), CHUNK):
            chunk = keys[i : i + CHUNK]
            rows = record.db.execute(
                "SELECT t.value, r.run_uuid, r.start_time, r.artifact_uri"
                " FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid"
                f" WHERE t.key = 'node_key' AND t.value IN ({','.join('?' * len(chunk))}) AND r.experiment_id = ?"
                " AND r.status = 'FINISHED' AND r.lifecycle_stage = 'active'",
                (*chunk, record.experiment_id),
            )
            for key, run_id, start, artifact_uri in rows:
                found[key].append((start or 0, run_id, artifact_uri))
        return [(nodes[key], [(run, uri) for _, run, uri in sorted(runs, reverse=True)]) for key, runs in found.items()]

    @staticmethod
    def _still_found(lookup: tuple[str, list[tuple[str, str]]]) -> bool:
        """Whether the lookup of a key would return the run the sweep recorded."""
        recorded, runs = lookup
        found = first_result(runs, lambda run: _holds_result(artifact_folder(run[1])))
        return found is not None and found[0] == recorded


def _holds_result(folder: Path) -> bool:
    """The rule of results.py, read from the run's artifact folder."""
    try:
        manifest = manifest_entries((folder / MANIFEST).read_bytes())
        listing = {path.name: path.stat().st_size for path in folder.iterdir() if path.is_file()}
        return files_complete(manifest, listing) and verifies(manifest, RESULT, (folder / RESULT).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def through_mlflow(uri: str, experiment: str, fingerprint: str) -> Optional[FinishedSweep]:
    from mlflow.exceptions import MlflowException

    from orchestrator.track.artifacts import Artifacts
    from orchestrator.track.resilient import StoreUnavailable
    from orchestrator.track.store import Store

    try:
        store = Store.existing(uri, experiment)
        runs = store.client.search_runs(
            [store.experiment_id],
            f"tags.`{FINGERPRINT}` = '{fingerprint}' and {FINISHED}",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if not runs:
            return None
        parent = runs[0]
        with TemporaryDirectory(prefix="unlearn-sweep-finished-") as folder:
            summary, nodes = (
                json.loads(Path(store.client.download_artifacts(parent.info.run_id, name, folder)).read_text())
                for name in (SUMMARY, NODES)
            )
        if summary["nodes"]["failed"]:
            return None
        artifacts = Artifacts(store)
        for key, run_id in nodes.items():
            found = artifacts.find(key)
            if found is None or found.run_id != run_id:
                return None
    except (StoreError, StoreUnavailable, MlflowException, OSError, ValueError, KeyError):
        return None
    return FinishedSweep(parent.info.run_id, parent.data.tags.get("sweep_id", ""), store.experiment_id, summary, None)
