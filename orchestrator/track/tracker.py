"""The store and its three parts, opened together from (uri, experiment, artifact location): what a driver or a
worker process holds."""

from __future__ import annotations

from typing import Optional

from orchestrator.track.artifacts import Artifacts
from orchestrator.track.claims import Claims
from orchestrator.track.lineage import SweepLineage
from orchestrator.track.store import Store


class Tracker:
    def __init__(self, uri: str, experiment: str, artifact_location: Optional[str] = None):
        self.store = Store.open(uri, experiment, artifact_location)
        self.uri, self.args = self.store.uri, self.store.args
        self.artifacts = Artifacts(self.store)
        self.claims = Claims(self.store, self.artifacts)
        self.lineage = SweepLineage(self.store)
