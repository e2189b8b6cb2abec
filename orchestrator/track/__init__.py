"""Stage 4, the record: MLflow as the index of every node ever computed. `Tracker` opens the store and holds its
three parts: `artifacts` (write, find, verify and read a node's result), `claims` (one computation per key across
concurrent sweeps; heartbeats, failures, kills) and `sweeps` (a sweep's parent run and its lineage: progress, links
to cached nodes, result runs, the report). For commands that only read the record: `sweeps.py` (find a sweep, its
summary and status) and `cache.py` (stored results per kind, re-verification, garbage). Around them: `resilient.py`
(store calls retried through a server's outage), `drivers.py` (which process holds a run, and whether it is gone),
`recovery.py` (a sweep's first step: take over the runs of sweeps whose driver died) and `finished.py` (an identical
sweep that already finished, found without torch and, in a sqlite store, without MLflow).

Names are imported from their modules when first used (PEP 562), so that `finished.py` loads without MLflow."""

from orchestrator.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "orchestrator.track.artifacts": ("Artifacts", "CachedRun"),
        "orchestrator.track.claims": ("HEARTBEAT_SECONDS", "Claim", "Claims", "TrackedNode"),
        "orchestrator.track.lineage": ("SweepRuns",),
        "orchestrator.track.recovery": ("take_over_dead_sweeps",),
        "orchestrator.track.resilient": ("StoreUnavailable",),
        "orchestrator.track.store": ("Store", "StoreError", "describe_uri"),
        "orchestrator.track.tracker": ("Tracker",),
    },
)
