"""Stage 3, the record: MLflow as the index of every node ever computed, read before anything runs (what is cached)
and written as nodes finish. `Tracker` opens the store and holds its three parts: `artifacts` (write, find, verify
and read a node's result, by the one rule of `results.py`), `claims` (one computation per key across concurrent
sweeps; heartbeats, failures, kills) and `lineage` (a sweep's parent run: progress, links to cached nodes, result
runs, the report). For commands that only read the record: `stored_sweeps.py` (a sweep by id, its summary and
status) and `cache.py` (stored results per kind, re-verification, garbage). Around them: `resilient.py` (store calls
retried through a server's outage), `drivers.py` (which process holds a run, and whether it is gone), `recovery.py`
(a sweep's first step: take over the runs of sweeps whose driver died), `finished.py` (an identical sweep that
already finished, found without torch and, in a sqlite store, without MLflow) and `ui.py` (where MLflow's UI shows a
sweep).

Names are imported from their modules when first used (PEP 562), so that `finished.py` loads without MLflow."""

from orchestrator.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "orchestrator.track.artifacts": ("Artifacts", "CachedRun", "CorruptArtifact"),
        "orchestrator.track.claims": ("Claim", "Claims"),
        "orchestrator.track.node": ("TrackedNode",),
        "orchestrator.track.lineage": ("SweepLineage",),
        "orchestrator.track.recovery": ("take_over_dead_sweeps",),
        "orchestrator.track.resilient": ("StoreUnavailable",),
        "orchestrator.track.errors": ("StoreError",),
        "orchestrator.track.store": ("Store", "describe_uri"),
        "orchestrator.track.tags": ("HEARTBEAT_SECONDS",),
        "orchestrator.track.tracker": ("Tracker",),
    },
)
