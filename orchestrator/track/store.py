"""The MLflow store a sweep records into: the client, the experiment, and the helpers every part of the record
shares (params in batches, nested dicts flattened to dotted names). The embedded default is a sqlite file and a
local artifact folder; on a cluster, an MLflow server whose artifact root is S3."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

EMBEDDED_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "")


@dataclass
class Store:
    uri: str
    client: MlflowClient
    experiment_id: str
    args: tuple  # enough to open the same store in a worker process: (uri, experiment, artifact_location)

    @classmethod
    def open(cls, uri: str, experiment: str, artifact_location: Optional[str] = None) -> "Store":
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):  # workers may run in another folder
            uri = "sqlite:///" + os.path.abspath(uri.removeprefix("sqlite:///"))
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return cls(uri, client, found.experiment_id, (uri, experiment, artifact_location))
        # None: the server's default artifact root (on a cluster, S3), or ./mlartifacts for an embedded store.
        if artifact_location is None and uri.split(":")[0] in EMBEDDED_SCHEMES:
            artifact_location = "mlartifacts"
        location = artifact_location if artifact_location is None or "://" in artifact_location else Path(artifact_location).resolve().as_uri()
        return cls(uri, client, client.create_experiment(experiment, artifact_location=location), (uri, experiment, artifact_location))

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        for batch in chunks([Param(k, v[:6000]) for k, v in params.items()], 100):
            self.client.log_batch(run_id, params=batch)


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """A nested config as MLflow params: dotted names, lists and None as JSON."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, bool)) or value is None else str(value)
    return out


def chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe_uri(uri: str) -> str:
    return uri if not uri.startswith("sqlite:///") else f"{uri} ({os.path.abspath(uri.removeprefix('sqlite:///'))})"
