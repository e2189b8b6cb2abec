"""The MLflow store a sweep records into: the client, the experiment, and the helpers every part of the record
shares (params in batches, nested dicts flattened to dotted names). The embedded default is a sqlite file and a
local artifact folder; on a cluster, an MLflow server whose artifact root is S3."""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from orchestrator.track.errors import StoreError
from orchestrator.track.locations import in_ray_temp, local_path
from orchestrator.track.params import chunks
from orchestrator.track.resilient import RetryingClient, http_defaults, is_http, probe
from orchestrator.track.ui import absolute
from orchestrator.version import git_commit

EMBEDDED_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "")
# MLflow 3's experiment page reads this tag to open a model-training experiment on its runs table instead of a GenAI
# overview. MLflow 3.17's UI decides by its GenAI / Model training switch instead (the address ui.ui_path gives).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


@dataclass
class Store:
    uri: str
    client: MlflowClient
    experiment_id: str
    args: tuple  # enough to open the same store in a worker process: (uri, experiment, artifact_location)

    @classmethod
    def open(cls, uri: str, experiment: str, artifact_location: Optional[str] = None) -> Store:
        uri = absolute(uri)
        client = connect(uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            if in_ray_temp(local_path(found.artifact_location) or Path("/")):
                raise StoreError(
                    f"experiment {experiment!r} in {uri} keeps its artifacts in {found.artifact_location}, a Ray Job's "
                    "temporary folder (a job created it without a store that outlives it): name another experiment "
                    "(tracking.experiment=NAME) or use another store"
                )
            if found.tags.get(EXPERIMENT_KIND[0]) is None:  # made before the tag existed, or by another tool
                client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
            return cls(uri, client, found.experiment_id, (uri, experiment, artifact_location))
        artifact_location = artifact_location or default_artifact_location(uri)
        location = (
            artifact_location
            if artifact_location is None or "://" in artifact_location
            else Path(artifact_location).resolve().as_uri()
        )
        experiment_id = client.create_experiment(experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND]))
        return cls(uri, client, experiment_id, (uri, experiment, artifact_location))

    @classmethod
    def existing(cls, uri: str, experiment: str) -> Store:
        """The store as it is, for commands that only read it: a missing sqlite file or experiment is an error,
        never created."""
        uri = absolute(uri)
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            raise StoreError(f"no MLflow store at {uri.removeprefix('sqlite:///')}")
        client = connect(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise StoreError(f"no experiment {experiment!r} in {uri}")
        return cls(uri, client, found.experiment_id, (uri, experiment, None))

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        for batch in chunks([Param(k, v[:6000]) for k, v in params.items()], 100):
            self.client.log_batch(run_id, params=batch)


def default_artifact_location(uri: str) -> Optional[str]:
    """Where a new experiment keeps its artifacts when the sweep does not say: `mlartifacts/` beside a sqlite file,
    in the working directory for another embedded store, and the server's default artifact root (on a cluster, S3)
    for a tracking server (None)."""
    if uri.startswith("sqlite:///"):
        return str(local_path(uri).parent / "mlartifacts")
    return "mlartifacts" if uri.split(":")[0] in EMBEDDED_SCHEMES else None


def connect(uri: str):
    """A client of the store that retries through a server's outage; a server that does not answer now is a
    StoreUnavailable naming the URI, in seconds (orchestrator/track/resilient.py)."""
    if is_http(uri):
        http_defaults()
        probe(uri)
    return RetryingClient(MlflowClient(tracking_uri=uri), uri)


@functools.lru_cache(maxsize=1)
def system_tags() -> dict[str, str]:
    """MLflow's own tags for who ran what: the user, the program and, from a git checkout of it, the commit (the
    runs table shows them as User and Source). Read once per process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = os.environ.get("USER", "unknown")
    tags = {"mlflow.user": user, "mlflow.source.name": "unlearn-sweep", "mlflow.source.type": "LOCAL"}
    if (commit := git_commit()) is not None:
        tags["mlflow.source.git.commit"] = commit
    return tags


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe_uri(uri: str) -> str:
    return uri if not uri.startswith("sqlite:///") else f"{uri} ({os.path.abspath(uri.removeprefix('sqlite:///'))})"
