"""A node's result as MLflow artifacts, written and read so that a result is never half there: `result.json`, the
checkpoint `model.pt`, extra `tensors.pt`, and last `manifest.json` with the sha256 of each file. A node counts as
cached only if its run FINISHED and every artifact in its manifest verifies; checkpoints load with
`weights_only=True`, so a tampered artifact cannot run code."""
from __future__ import annotations

import json
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from orchestrator.track.store import Store, chunks, sha256_bytes

MANIFEST = "manifest.json"
RESULT = "result.json"
CHECKPOINT = "model.pt"
TENSORS = "tensors.pt"


@dataclass
class CachedRun:
    run_id: str
    result: dict
    sweep_id: str = ""  # the sweep that computed it


class Artifacts:
    def __init__(self, store: Store):
        self.store, self.client = store, store.client
        self._downloads = tempfile.TemporaryDirectory(prefix="unlearn-sweep-")
        self._manifests: dict[str, dict[str, str]] = {}
        self._verified_paths: dict[tuple[str, str], Path] = {}

    def find(self, key: str) -> Optional[CachedRun]:
        """The newest FINISHED run of this key whose artifacts verify."""
        runs = self.client.search_runs([self.store.experiment_id], f"tags.node_key = '{key}' and attributes.status = 'FINISHED'",
                                       max_results=5, order_by=["attributes.start_time DESC"])
        for run in runs:
            try:
                for name in self._manifest(run.info.run_id):
                    self._verified(run.info.run_id, name)
                return CachedRun(run.info.run_id, json.loads(self._verified(run.info.run_id, RESULT).read_text()),
                                 run.data.tags.get("sweep_id", ""))
            except (OSError, ValueError, KeyError, MlflowException):
                continue  # missing or tampered artifacts: not a result
        return None

    def record(self, run_id: str, output, seconds: float) -> None:
        """Metrics, curves (logged with their steps, in batches) and artifacts of a claimed run; FINISHED once the
        manifest is written."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in output.metrics.items()] + [Metric("node_seconds", seconds, now, 0)]
        metrics += [Metric(name, float(value), now, int(step)) for name, curve in output.curves.items() for step, value in curve]
        for batch in chunks(metrics, 1000):
            self.client.log_batch(run_id, metrics=batch)
        self._write(run_id, output)
        self.client.set_terminated(run_id, "FINISHED")

    def load_state(self, run_id: str) -> dict:
        return torch.load(self._verified(run_id, CHECKPOINT), map_location="cpu", weights_only=True)

    def load_tensors(self, run_id: str) -> dict:
        return torch.load(self._verified(run_id, TENSORS), map_location="cpu", weights_only=True)

    # -- internals ------------------------------------------------------------------------------------------------
    def _write(self, run_id: str, output) -> None:
        with tempfile.TemporaryDirectory() as folder:
            files = {RESULT: json.dumps(output.result, indent=1).encode()}
            for name, obj in ((CHECKPOINT, output.state), (TENSORS, output.tensors or None)):
                if obj is not None:
                    path = Path(folder) / name
                    torch.save(obj, path)
                    files[name] = path.read_bytes()
            manifest = {name: sha256_bytes(data) for name, data in files.items()}
            for name, data in files.items():
                (Path(folder) / name).write_bytes(data)
                self.client.log_artifact(run_id, str(Path(folder) / name))
            (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=1))
            self.client.log_artifact(run_id, str(Path(folder) / MANIFEST))  # last: its presence means the rest is there

    def _download(self, run_id: str, name: str) -> Path:
        root = self.client.get_run(run_id).info.artifact_uri
        if root.startswith("file://"):  # a local store: read in place instead of copying
            path = Path(urllib.parse.urlparse(root).path) / name
            if not path.is_file():
                raise FileNotFoundError(path)
            return path
        target = Path(self._downloads.name) / run_id
        target.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, name, str(target)))

    def _manifest(self, run_id: str) -> dict[str, str]:
        if run_id not in self._manifests:
            self._manifests[run_id] = json.loads(self._download(run_id, MANIFEST).read_text())
        return self._manifests[run_id]

    def _verified(self, run_id: str, name: str) -> Path:
        """The artifact's local path, after checking its bytes against the sha256 recorded when it was written."""
        if (run_id, name) not in self._verified_paths:
            path = self._download(run_id, name)
            if sha256_bytes(path.read_bytes()) != self._manifest(run_id)[name]:
                raise ValueError(f"artifact {name} of run {run_id} does not match its recorded sha256")
            self._verified_paths[(run_id, name)] = path
        return self._verified_paths[(run_id, name)]
