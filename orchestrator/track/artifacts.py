"""A node's result as MLflow artifacts, written and read so that a result is never half there: `result.json`, the
checkpoint `model.pt`, extra `tensors.pt`, and last `manifest.json` with the sha256 and size of each file.

Looking a node up never downloads a checkpoint: a FINISHED run is a cached result when its manifest is there, every
file it names is in the artifact listing with the recorded size, and `result.json` (small) verifies. A checkpoint is
hashed when it is loaded; one that does not verify raises `CorruptArtifact` and its run is marked FAILED with the
reason, so the scheduler recomputes that node and the next lookup no longer finds it. Checkpoints load with
`weights_only=True`, so a tampered artifact cannot run code: one that verifies (its manifest rewritten too) but that
torch refuses or cannot read is as corrupt as one that does not verify. A write that fails half-way (a full disk, an
object store refusing it) leaves no manifest, so its files are never taken as a result."""

from __future__ import annotations

import json
import pickle
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException

from orchestrator.track.params import chunks
from orchestrator.track.results import (
    CHECKPOINT,
    FINISHED,
    LOOKUP_DEPTH,
    MANIFEST,
    RESULT,
    TENSORS,
    files_complete,
    first_result,
    manifest_entries,
    verifies,
)
from orchestrator.track.store import Store, sha256_bytes


class CorruptArtifact(ValueError):
    """An artifact's bytes do not match its manifest: the run holding it is no longer a result."""

    def __init__(self, run_id: str, message: str, why: str = "sha256 differs from the manifest"):
        super().__init__(message)
        self.run_id, self.why = run_id, why


@dataclass
class CachedRun:
    run_id: str
    result: dict
    sweep_id: str = ""  # the sweep that computed it


class Artifacts:
    def __init__(self, store: Store):
        self.store, self.client = store, store.client
        self._downloads = tempfile.TemporaryDirectory(prefix="unlearn-sweep-")
        self._manifests: dict[str, dict[str, dict]] = {}
        self._verified_paths: dict[tuple[str, str], Path] = {}
        self._roots: dict[str, str] = {}  # run id -> artifact URI, from the search that found it (no get_run each)

    def find(self, key: str) -> Optional[CachedRun]:
        """The run holding the result of this key, by the one rule (results.py), or None."""
        runs = self.client.search_runs(
            [self.store.experiment_id],
            f"tags.node_key = '{key}' and {FINISHED}",
            max_results=LOOKUP_DEPTH,
            order_by=["attributes.start_time DESC"],
        )
        for run in runs:
            self._roots[run.info.run_id] = run.info.artifact_uri
        found = first_result(runs, lambda run: self.recorded(run.info.run_id))
        if found is None:
            return None
        result = json.loads(self._verified(found.info.run_id, RESULT).read_text())
        return CachedRun(found.info.run_id, result, found.data.tags.get("sweep_id", ""))

    def is_result(self, run_id: str) -> bool:
        """Whether the run still counts as a result (a corrupt checkpoint found on loading turns it FAILED)."""
        return self.client.get_run(run_id).info.status == "FINISHED"

    def recorded(self, run_id: str) -> bool:
        """Whether the run's result was written in full (its manifest, written last, is there, every file it names has
        its size and result.json verifies), whatever the run's status says."""
        try:
            return self._complete(run_id) and self._verified(run_id, RESULT) is not None
        except (OSError, ValueError, KeyError, MlflowException):
            return False

    def record(
        self,
        run_id: str,
        output,
        seconds: float,
        tags: Optional[dict[str, str]] = None,
        artifact_uri: Optional[str] = None,
    ) -> None:
        """Metrics, curves (logged with their steps, in batches) and artifacts of a claimed run; FINISHED once the
        manifest is written. `tags`: more facts about how it ran. `artifact_uri`: the run's, from its claim (saves
        reading the run back to find it)."""
        if artifact_uri is not None:
            self.remember_root(run_id, artifact_uri)
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in output.metrics.items()] + [
            Metric("node_seconds", seconds, now, 0)
        ]
        metrics += [
            Metric(name, float(value), now, int(step)) for name, curve in output.curves.items() for step, value in curve
        ]
        # How it ran (threads, denormal flushing, device) as tags, so the runs table can filter slow runs by them.
        facts = {f"runtime.{k}": str(v) for k, v in output.result.get("runtime", {}).items()} | (tags or {})
        # The tags and the first metrics in one call (a batch holds up to 1000 entities): one request fewer per node.
        head = max(0, 1000 - len(facts))
        self.client.log_batch(run_id, metrics=metrics[:head], tags=[RunTag(k, v) for k, v in facts.items()])
        for batch in chunks(metrics[head:], 1000):
            self.client.log_batch(run_id, metrics=batch)
        self._write(run_id, output)
        self.client.set_terminated(run_id, "FINISHED")

    def load_state(self, run_id: str) -> dict:
        return self._load(run_id, CHECKPOINT)

    def load_tensors(self, run_id: str) -> dict:
        return self._load(run_id, TENSORS)

    # -- internals ------------------------------------------------------------------------------------------------
    def _write(self, run_id: str, output) -> None:
        with tempfile.TemporaryDirectory() as folder:
            files = {RESULT: json.dumps(output.result, indent=1).encode()}
            for name, obj in ((CHECKPOINT, output.state), (TENSORS, output.tensors or None)):
                if obj is not None:
                    path = Path(folder) / name
                    import torch  # only where a checkpoint is written or read: the record's readers load no torch

                    torch.save(obj, path)
                    files[name] = path.read_bytes()
            manifest = {name: {"sha256": sha256_bytes(data), "size": len(data)} for name, data in files.items()}
            root = self._root(run_id)
            for name, data in files.items():
                (Path(folder) / name).write_bytes(data)
                self.client.log_artifact_at(root, str(Path(folder) / name))
            (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1))
            # Last: its presence means the rest is there.
            self.client.log_artifact_at(root, str(Path(folder) / MANIFEST))

    def remember_root(self, run_id: str, artifact_uri: str) -> None:
        """The run's artifact URI, known from a call that returned the run (no get_run later)."""
        self._roots[run_id] = artifact_uri

    def _root(self, run_id: str) -> str:
        if run_id not in self._roots:
            self._roots[run_id] = self.client.get_run(run_id).info.artifact_uri
        return self._roots[run_id]

    def _local(self, run_id: str) -> Optional[Path]:
        """The run's artifact folder when the store is on this file system (read in place, never copied)."""
        root = self._root(run_id)
        return Path(urllib.parse.urlparse(root).path) if root.startswith("file://") else None

    def _download(self, run_id: str, name: str) -> Path:
        if (folder := self._local(run_id)) is not None:
            if not (folder / name).is_file():
                raise FileNotFoundError(folder / name)
            return folder / name
        target = Path(self._downloads.name) / run_id
        target.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, name, str(target)))

    def _manifest(self, run_id: str) -> dict[str, dict]:
        """name -> {"sha256", "size"}."""
        if run_id not in self._manifests:
            self._manifests[run_id] = manifest_entries(self._download(run_id, MANIFEST).read_text())
        return self._manifests[run_id]

    def listing(self, run_id: str, artifact_uri: Optional[str] = None) -> dict[str, int]:
        """The run's artifact files (top level) and their sizes, read from the folder or the store's listing."""
        if artifact_uri is not None:
            self.remember_root(run_id, artifact_uri)
        folder = self._local(run_id)
        if folder is not None:
            return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
        return {info.path: info.file_size for info in self.client.list_artifacts(run_id) if not info.is_dir}

    def problems(self, run_id: str, artifact_uri: Optional[str] = None) -> list[str]:
        """Every way the run's artifacts fail their manifest: missing, wrong size, wrong sha256 (each file hashed,
        checkpoints included), or a checkpoint torch.load(weights_only=True) refuses. Empty when all verify."""
        listed = self.listing(run_id, artifact_uri)
        if MANIFEST not in listed:
            return [f"no {MANIFEST}"]
        out = []
        for name, entry in self._manifest(run_id).items():
            if name not in listed or entry["size"] not in (None, listed[name]):
                out.append(
                    f"{name}: missing"
                    if name not in listed
                    else f"{name}: {listed[name]} bytes, recorded {entry['size']}"
                )
                continue
            try:
                if name.endswith(".pt"):
                    self._torch_load(run_id, name)
                else:
                    self._verified(run_id, name)
            except CorruptArtifact as error:
                out.append(f"{name}: {error.why}")
        return out

    def _complete(self, run_id: str) -> bool:
        """Every file of the manifest is in the artifact listing with its recorded size (nothing downloaded)."""
        return files_complete(self._manifest(run_id), self.listing(run_id))

    def _verified(self, run_id: str, name: str) -> Path:
        """The artifact's local path, after checking its bytes against the sha256 recorded when it was written."""
        if (run_id, name) not in self._verified_paths:
            path = self._download(run_id, name)
            if not verifies(self._manifest(run_id), name, path.read_bytes()):
                raise CorruptArtifact(run_id, f"artifact {name} of run {run_id} does not match its recorded sha256")
            self._verified_paths[(run_id, name)] = path
        return self._verified_paths[(run_id, name)]

    def _torch_load(self, run_id: str, name: str) -> dict:
        """A verified checkpoint, loaded with weights_only=True: a pickle that would run code, or bytes that are not a
        checkpoint, raise CorruptArtifact."""
        path = self._verified(run_id, name)
        try:
            import torch

            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
            why = f"refused by torch.load(weights_only=True): {str(error).splitlines()[0][:200]}"
            raise CorruptArtifact(run_id, f"artifact {name} of run {run_id} {why}", why) from None

    def _load(self, run_id: str, name: str) -> dict:
        try:
            return self._torch_load(run_id, name)
        except CorruptArtifact as error:
            self.client.set_tag(run_id, "corrupt_artifact", str(error))
            self.client.set_terminated(run_id, "FAILED")  # no lookup finds it again; its node is recomputed
            raise
