"""Stage 4, the record: MLflow as the index of every node ever computed. `Tracker` opens the store and holds its
three parts: `artifacts` (write, find, verify and read a node's result), `claims` (one computation per key across
concurrent sweeps; heartbeats, failures, kills) and `sweeps` (a sweep's parent run and its lineage: progress, links
to cached nodes, result runs, the report). For commands that only read the record: `sweeps.py` (find a sweep, its
summary and status) and `cache.py` (stored results per kind, re-verification, garbage). Around them: `resilient.py`
(store calls retried through a server's outage), `drivers.py` (which process holds a run, and whether it is gone) and
`recovery.py` (a sweep's first step: take over the runs of sweeps whose driver died)."""
from orchestrator.track.artifacts import Artifacts, CachedRun
from orchestrator.track.claims import HEARTBEAT_SECONDS, Claim, Claims, TrackedNode
from orchestrator.track.lineage import SweepRuns
from orchestrator.track.recovery import take_over_dead_sweeps
from orchestrator.track.resilient import StoreUnavailable
from orchestrator.track.store import Store, StoreError, describe_uri
from orchestrator.track.tracker import Tracker

__all__ = ["HEARTBEAT_SECONDS", "Artifacts", "CachedRun", "Claim", "Claims", "Store", "StoreError", "StoreUnavailable", "SweepRuns",
           "TrackedNode", "Tracker", "describe_uri", "take_over_dead_sweeps"]
