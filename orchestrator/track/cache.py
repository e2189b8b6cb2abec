"""The cache as a whole, for `unlearn-sweep cache verify | gc` (`cache ls` reads records.py's usage): every stored
result re-verified against the sha256 its manifest recorded, and garbage: claim runs a sweep deleted (it lost the
claim to another sweep computing the same key) and artifact folders no run owns any more.

Only node runs (tagged `node_key`) are results; link and result runs hold no artifacts and are not cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from mlflow.entities import Run, ViewType
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from orchestrator.track.artifacts import Artifacts
from orchestrator.track.records import RUN_ID
from orchestrator.track.store import Store, StoreError
from orchestrator.track.stored_sweeps import all_runs, node_runs


def verify(store: Store, artifacts: Artifacts) -> tuple[int, list[tuple[Run, list[str]]]]:
    """Every stored result hashed against its manifest: (how many checked, [(run, its problems)]). A run that fails
    is no longer a result (FAILED, tagged `corrupt_artifact`, as when a sweep finds it on loading), so the next sweep
    that needs it recomputes it rather than trusting bytes that are known to be bad."""
    runs = node_runs(store)
    failed = [(run, found) for run in runs if (found := artifacts.problems(run.info.run_id, run.info.artifact_uri))]
    for run, found in failed:
        store.client.set_tag(run.info.run_id, "corrupt_artifact", f"cache verify: {'; '.join(found)}"[:4000])
        store.client.set_terminated(run.info.run_id, "FAILED")
    return len(runs), failed


@dataclass
class Garbage:
    deleted_runs: list[Run] = field(default_factory=list)  # soft-deleted claim runs
    orphans: list[str] = field(
        default_factory=list
    )  # artifact folders (by name under the experiment's root) with no run
    orphan_bytes: int = 0


def _local_size(uri: str) -> int:
    path = Path(urlparse(uri).path) if uri.startswith("file:") else Path(uri)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def find_garbage(store: Store) -> Garbage:
    """Deleted claim runs, and folders under the experiment's artifact root named like a run that no remaining run
    owns (the deleted runs' folders among them). Other folders there (MLflow's own `models/`, ...) are left alone."""
    garbage = Garbage(deleted_runs=node_runs(store, None, ViewType.DELETED_ONLY))
    going = {run.info.run_id for run in garbage.deleted_runs}
    staying = {run.info.run_id for run in all_runs(store, "", ViewType.ALL)} - going
    location = _location(store)
    for entry in get_artifact_repository(location).list_artifacts():
        if entry.is_dir and RUN_ID.match(entry.path) and entry.path not in staying:
            garbage.orphans.append(entry.path)
            if location.startswith("file:"):
                garbage.orphan_bytes += _local_size(f"{location.rstrip('/')}/{entry.path}")
    return garbage


def collect(store: Store, garbage: Garbage) -> None:
    """Deletes for good what `find_garbage` found: the deleted runs (as `mlflow gc` does, through the backend store;
    a tracking server cannot), then the orphaned folders, which hold the deleted runs' artifacts too."""
    backend = store.client._tracking_client.store  # noqa: SLF001 - hard deletes have no public client API
    if garbage.deleted_runs and not hasattr(backend, "_hard_delete_run"):
        raise StoreError(
            f"cache gc: {store.uri} cannot delete runs for good (a tracking server); "
            "run it with --tracking-uri set to the server's backend store (its database URI)"
        )
    location = _location(store)
    for run in garbage.deleted_runs:
        if run.info.run_id not in garbage.orphans:  # its artifacts live outside the experiment's root
            get_artifact_repository(run.info.artifact_uri).delete_artifacts()
        backend._hard_delete_run(run.info.run_id)  # noqa: SLF001
    repo = get_artifact_repository(location)
    for name in garbage.orphans:
        repo.delete_artifacts(name)


def _location(store: Store) -> str:
    return store.client.get_experiment(store.experiment_id).artifact_location
