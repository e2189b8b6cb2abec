"""Stage 4, execution: the run's state of its plan (`state.py`: each node's status, run and result, looked up in the
record), the scheduling loop every executor shares (`scheduler.py`: resolve keys as inputs finish, take cached nodes
from the store, claim the rest, retry failures), the pools that decide where a node runs (`local.py`: this process;
`ray_pool.py`: long-lived worker actors), the worker that runs a node kind with its typed config (`worker.py`), the
resources a node asks for, Ray Tune searches whose trials are nodes like any other, progress, and how a run stops."""

from orchestrator.execute.local import LocalPool
from orchestrator.execute.scheduler import Finished, Pool, Scheduler, run_sweep
from orchestrator.execute.state import NodeState, RunState, Status

__all__ = ["Finished", "LocalPool", "NodeState", "Pool", "RunState", "Scheduler", "Status", "run_sweep"]
