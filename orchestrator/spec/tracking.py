"""The sweep file's `tracking` section: where its record goes. Apart from the schema because a re-run looks for its
finished twin in that store before anything imports the workloads (fingerprint.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TrackingSpec:
    uri: str = "sqlite:///mlflow.db"
    # Where a new experiment keeps checkpoints: None is mlartifacts/ beside a sqlite file (./mlartifacts for another
    # embedded store) and the server's default artifact root (S3 on a cluster) for a tracking server; or any URI.
    artifact_location: Optional[str] = None
    experiment: str = "unlearn-sweep"
