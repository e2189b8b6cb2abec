"""Where a node's periodic training checkpoint is kept beside the training machine's own file: in the sweep's artifact
store, under the node's content key (`<experiment's artifact location>/checkpoints/<key>/`: the checkpoint
`<sha256>/<key>.pt`, then `manifest.json` naming it with its sha256 and size), so that when the machine is lost (a spot
instance preempted at hour 7 of a retrain) the node resumes on any other worker from its last checkpoint, not from
scratch. Keyed by the content key, not the run: a takeover computes the node in a new run.

When: `UNLEARN_SWEEP_CHECKPOINT_STORE` = `artifacts` (always in the artifact store), `local` (only the training
machine's cache folder, as before) or unset/`auto`: the artifact store when the experiment's artifacts live elsewhere
than this file system (s3://, gs://, a server's mlflow-artifacts:), the local folder otherwise. So a local run keeps its
checkpoints on its disk alone, and a cluster writing to S3 keeps them in the bucket; a cluster whose machines share a
folder for artifacts (NFS) asks for `artifacts` explicitly.

Verified like a result: a checkpoint whose bytes do not match the manifest (an upload cut short, an object replaced)
raises on download, and the training checkpoint (workloads/checkpoint.py) removes it and does not resume from it; it is
read with `torch.load(weights_only=True)` there, as the local file is. Each upload goes to a folder of its own and the
manifest (one object, replaced at once) then points at it, so a machine lost in the middle of an upload leaves the
previous checkpoint whole and named by the manifest; the previous folder goes once the manifest moved on. The node's
checkpoint is removed once its result is recorded."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from orchestrator.track.store import Store

STORE_ENV = "UNLEARN_SWEEP_CHECKPOINT_STORE"
MODES = ("auto", "artifacts", "local")
MANIFEST = "manifest.json"
_locations: dict[tuple[str, str], str] = {}  # (store URI, experiment id) -> its artifact location, asked once


class StoredCheckpoint:
    """A node's training checkpoint in the artifact store (a `workloads.checkpoint.CheckpointStore`)."""

    def __init__(self, root: str, key: str, tracking_uri: Optional[str] = None):
        self.uri, self.name = f"{root.rstrip('/')}/{key}", f"{key}.pt"
        self.repo = get_artifact_repository(self.uri, tracking_uri=tracking_uri)

    def __str__(self) -> str:
        return self.uri

    def upload(self, path: Path) -> None:
        """The file goes to a folder named by its sha256, then the manifest points at it (one PUT: the switch from
        the previous checkpoint, which stays whole until then), then older folders go. A machine lost half-way
        leaves the previous checkpoint resumable."""
        if path.name != self.name:
            raise ValueError(f"{path} is not the checkpoint of {self.uri}")
        digest, size = _sha256(path)
        self.repo.log_artifact(str(path), digest)
        with tempfile.TemporaryDirectory(prefix="unlearn-sweep-ckpt-") as folder:
            manifest = Path(folder) / MANIFEST
            manifest.write_text(json.dumps({"file": f"{digest}/{self.name}", "sha256": digest, "size": size}))
            self.repo.log_artifact(str(manifest))
        for entry in self.repo.list_artifacts():
            if entry.is_dir and entry.path.rsplit("/", 1)[-1] != digest:
                self.repo.delete_artifacts(entry.path)

    def download(self, path: Path) -> bool:
        if MANIFEST not in {entry.path.rsplit("/", 1)[-1] for entry in self.repo.list_artifacts() if not entry.is_dir}:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".stored-", dir=path.parent) as folder:
            entry = json.loads(Path(self.repo.download_artifacts(MANIFEST, folder)).read_text())
            got = Path(self.repo.download_artifacts(entry["file"], folder))
            digest, size = _sha256(got)
            if size != entry["size"] or digest != entry["sha256"]:
                raise ValueError(
                    f"{self.uri}/{entry['file']}: {size} bytes, sha256 {digest[:12]}..., but its manifest records "
                    f"{entry['size']} bytes, sha256 {entry['sha256'][:12]}..."
                )
            os.replace(got, path)
        return True

    def delete(self) -> None:
        self.repo.delete_artifacts()  # the key's folder; nothing there is not an error


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def checkpoint_root(store: Store, mode: Optional[str] = None) -> Optional[str]:
    """Where the sweep's training checkpoints are stored for any worker (`<artifact location>/checkpoints`), or None
    when they stay on the training machine alone. `mode`: `UNLEARN_SWEEP_CHECKPOINT_STORE` unless given."""
    mode = (mode if mode is not None else os.environ.get(STORE_ENV, "")).strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{STORE_ENV}={mode!r}: one of {', '.join(MODES)}")
    if mode == "local":
        return None
    where = (store.uri, store.experiment_id)
    if where not in _locations:
        _locations[where] = store.client.get_experiment(store.experiment_id).artifact_location
    location = _locations[where]
    if mode == "auto" and (location.startswith("file:") or "://" not in location and ":" not in location):
        return None
    return f"{location.rstrip('/')}/checkpoints"
