"""Stage 3, execution: the scheduling loop every executor shares (resolve keys as inputs finish, take cached nodes
from the store, claim the rest, retry failures), the pools that decide where a node runs (`local`: this process;
`ray`: long-lived worker actors), the worker that runs a node kind, the resources a node asks for, and Ray Tune
searches whose trials are nodes like any other."""

from orchestrator.execute.local import LocalPool
from orchestrator.execute.scheduler import Finished, Pool, Scheduler, run_sweep

__all__ = ["Finished", "LocalPool", "Pool", "Scheduler", "run_sweep"]
