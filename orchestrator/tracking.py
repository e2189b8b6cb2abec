"""MLflow as the index and the record: a parent run per sweep, a child run per executed node, checkpoints as
artifacts. A node counts as cached only if its run FINISHED and every artifact in its manifest verifies by sha256.
The manifest is written last, so a run cut off mid-upload is never mistaken for a result."""
from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from orchestrator.keys import sha256_hex

MANIFEST = "manifest.json"
RESULT = "result.json"
CHECKPOINT = "model.pt"


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)
    return out


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


# A claimed run's driver refreshes this tag every HEARTBEAT_SECONDS; a run silent for STALE_SECONDS is abandoned.
HEARTBEAT = "heartbeat"
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0


@dataclass
class Claim:
    run_id: Optional[str]  # ours to compute and record into
    holder: Optional[str] = None  # else: the run of another sweep computing the same key


@dataclass
class CachedRun:
    run_id: str
    result: dict
    sweep_id: str = ""  # the sweep that computed it


class Tracker:
    def __init__(self, uri: str, experiment: str, artifact_location: Optional[str] = None):
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):  # workers may run in another folder
            uri = "sqlite:///" + os.path.abspath(uri.removeprefix("sqlite:///"))
        self.uri = uri
        self.args = (uri, experiment, artifact_location)  # enough to open the same store in a worker process
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            # None: the server's default artifact root (on a cluster, S3), or ./mlartifacts for an embedded store.
            if artifact_location is None and uri.split(":")[0] in ("sqlite", "postgresql", "mysql", "mssql", "file", ""):
                artifact_location = "mlartifacts"
            location = artifact_location if artifact_location is None or "://" in artifact_location else Path(artifact_location).resolve().as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        else:
            self.experiment_id = found.experiment_id
        self._downloads = tempfile.TemporaryDirectory(prefix="unlearn-sweep-")
        self._manifests: dict[str, dict[str, str]] = {}
        self._verified_paths: dict[tuple[str, str], Path] = {}

    # -- sweeps ---------------------------------------------------------------------------------------------------
    def start_sweep(self, name: str, sweep_id: str, spec: dict, executor: str) -> str:
        run = self.client.create_run(self.experiment_id, run_name=f"sweep {name}", tags={
            "sweep_id": sweep_id, "sweep_name": name, "node_kind": "sweep", "executor": executor})
        self._log_params(run.info.run_id, _flatten("", spec, {}))
        return run.info.run_id

    def finish_sweep(self, run_id: str, summary: dict, ok: bool) -> None:
        self.client.log_dict(run_id, summary, "summary.json")
        now = int(time.time() * 1000)
        metrics = {f"nodes_{k}": v for k, v in summary.get("nodes", {}).items()} | {"wall_seconds": summary.get("wall_seconds", 0.0)}
        metrics |= {f"spearman_{name}": c["spearman"] for name, c in summary.get("correlations", {}).items() if c["spearman"] is not None}
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def record_search(self, run_id: str, searches: list[dict]) -> None:
        """The best trial of each search on the sweep's parent run: its hparams, score and unlearn run."""
        now = int(time.time() * 1000)
        for search in searches:
            best, name = search.get("best"), search["method"]
            if best is None:
                continue
            self._log_params(run_id, _flatten(f"search.{name}.best", best["hparams"], {}))
            self.client.set_tag(run_id, f"search.{name}.best_run_id", best["unlearn_run_id"])
            self.client.log_batch(run_id, metrics=[Metric(f"search_{name}_best_{search['metric']}", float(best["score"]), now, 0)])

    # -- nodes ----------------------------------------------------------------------------------------------------
    def find(self, key: str) -> Optional[CachedRun]:
        """The newest FINISHED run of this key whose artifacts verify."""
        runs = self.client.search_runs([self.experiment_id], f"tags.node_key = '{key}' and attributes.status = 'FINISHED'",
                                       max_results=5, order_by=["attributes.start_time DESC"])
        for run in runs:
            try:
                manifest = self._manifest(run.info.run_id)
                for name in manifest:
                    self._verified(run.info.run_id, name)
                return CachedRun(run.info.run_id, json.loads(self._verified(run.info.run_id, RESULT).read_text()),
                                 run.data.tags.get("sweep_id", ""))
            except (OSError, ValueError, KeyError, MlflowException):
                continue  # missing or tampered artifacts: not a result
        return None

    def why_new(self, node) -> str:
        """What differs from the newest finished run in the same slot: config fields, inputs, or the data read."""
        slot = node.slot.replace("'", "\\'")
        runs = self.client.search_runs([self.experiment_id], f"tags.node_slot = '{slot}' and attributes.status = 'FINISHED'",
                                       max_results=1, order_by=["attributes.start_time DESC"])
        if not runs:
            return "never run"
        before, now = runs[0].data.params, {k: v[:6000] for k, v in _flatten("", node.config, {}).items()}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            return "changed " + ", ".join(changed[:3]) + (f" (+{len(changed) - 3})" if len(changed) > 3 else "")
        inputs = sorted(role for role, inp in node.inputs.items() if runs[0].data.tags.get(f"input.{role}") != inp.key)
        return f"new input {', '.join(inputs)}" if inputs else "same config, different data or handler version"

    def link(self, run_id: str, sweep_id: str, parent_run_id: str) -> None:
        """Mark a reused node run as part of a later sweep, without recomputing it."""
        self.client.set_tag(run_id, f"reused_by.{sweep_id}", parent_run_id)

    # -- claims: one computation per key, across concurrent sweeps --------------------------------------------------
    def claim(self, node, sweep_id: str, parent_run_id: str) -> Claim:
        """Opens this node's run, then looks for live runs of the same key: the earliest (start time, run id) wins
        and computes it, the others delete their run and wait for the winner's result. Runs are kept alive by
        `heartbeat`; a run whose heartbeat is older than STALE_SECONDS belongs to a dead driver and is marked KILLED."""
        tags = {"node_key": node.key, "node_kind": node.kind, "node_slot": node.slot, "sweep_id": sweep_id,
                "mlflow.parentRunId": parent_run_id, HEARTBEAT: str(time.time()),
                **{f"input.{role}": inp.key for role, inp in node.inputs.items()}}
        run = self.client.create_run(self.experiment_id, run_name=node.label, tags=tags)
        live, done = [run], False
        # One query for every run of the key (a handful): the live claims, and whether it finished since we looked.
        for other in self.client.search_runs([self.experiment_id], f"tags.node_key = '{node.key}'", max_results=100,
                                             order_by=["attributes.start_time DESC"]):
            if other.info.run_id == run.info.run_id:
                continue
            if other.info.status == "FINISHED":
                done = True
            elif other.info.status == "RUNNING" and self._stale(other):
                self.kill(other.info.run_id, "its sweep stopped sending heartbeats")
            elif other.info.status == "RUNNING":
                live.append(other)
        first = min(live, key=lambda r: (r.info.start_time, r.info.run_id))
        finished = self.find(node.key) if done and first.info.run_id == run.info.run_id else None
        if first.info.run_id != run.info.run_id or finished is not None:
            self.client.delete_run(run.info.run_id)
            return Claim(None, first.info.run_id if finished is None else finished.run_id)
        self._log_params(run.info.run_id, _flatten("", node.config, {}))
        return Claim(run.info.run_id, None)

    def holder_alive(self, run_id: str) -> bool:
        """Whether a run that won a claim is still computing (RUNNING with a fresh heartbeat)."""
        run = self.client.get_run(run_id)
        return run.info.status == "RUNNING" and run.info.lifecycle_stage == "active" and not self._stale(run)

    def heartbeat(self, run_ids) -> None:
        now = str(time.time())
        for run_id in run_ids:
            self.client.set_tag(run_id, HEARTBEAT, now)

    def _stale(self, run) -> bool:
        return time.time() - float(run.data.tags.get(HEARTBEAT, 0)) > STALE_SECONDS

    # -- results --------------------------------------------------------------------------------------------------
    def record(self, run_id: str, output, seconds: float) -> None:
        """Metrics, curves and artifacts of a claimed run; FINISHED once the manifest is written."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in output.metrics.items()] + [Metric("node_seconds", seconds, now, 0)]
        metrics += [Metric(name, float(value), now, int(step)) for name, curve in output.curves.items() for step, value in curve]
        for batch in _chunks(metrics, 1000):
            self.client.log_batch(run_id, metrics=batch)
        self._log_artifacts(run_id, output)
        self.client.set_terminated(run_id, "FINISHED")

    def fail(self, run_id: str, error: str) -> None:
        self.client.set_tag(run_id, "error", error[-4000:])
        self.client.set_terminated(run_id, "FAILED")

    def kill(self, run_id: str, why: str) -> None:
        """A run that will never finish (its worker or its sweep died); never a run that already finished."""
        if self.client.get_run(run_id).info.status == "RUNNING":
            self.client.set_tag(run_id, "killed", why)
            self.client.set_terminated(run_id, "KILLED")

    def load_state(self, run_id: str) -> dict:
        # weights_only: a tampered checkpoint cannot run code when loaded.
        return torch.load(self._verified(run_id, CHECKPOINT), map_location="cpu", weights_only=True)

    def load_tensors(self, run_id: str) -> dict:
        return torch.load(self._verified(run_id, "tensors.pt"), map_location="cpu", weights_only=True)

    # -- internals ------------------------------------------------------------------------------------------------
    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        for batch in _chunks([Param(k, v[:6000]) for k, v in params.items()], 100):
            self.client.log_batch(run_id, params=batch)

    def _log_artifacts(self, run_id: str, output) -> None:
        with tempfile.TemporaryDirectory() as folder:
            files = {RESULT: json.dumps(output.result, indent=1).encode()}
            for name, obj in ((CHECKPOINT, output.state), ("tensors.pt", output.tensors or None)):
                if obj is not None:
                    path = Path(folder) / name
                    torch.save(obj, path)
                    files[name] = path.read_bytes()
            manifest = {name: sha256_hex(data) for name, data in files.items()}
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
            if sha256_hex(path.read_bytes()) != self._manifest(run_id)[name]:
                raise ValueError(f"artifact {name} of run {run_id} does not match its recorded sha256")
            self._verified_paths[(run_id, name)] = path
        return self._verified_paths[(run_id, name)]


def describe_uri(uri: str) -> str:
    return uri if not uri.startswith("sqlite:///") else f"{uri} ({os.path.abspath(uri.removeprefix('sqlite:///'))})"
