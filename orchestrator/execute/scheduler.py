"""The scheduling loop every executor shares.

The loop walks the DAG in topological order: a node whose inputs are done gets its content key; if the store has
it, it is cached; otherwise it is claimed in MLflow (so two sweeps started together compute a shared node once: the
loser waits for the winner's result) and handed to the pool. A pool only decides where a task runs: `LocalPool`
(local.py) runs it in this process, `RayPool` (ray_pool.py) on a worker actor. Failed tasks are retried
`retries` times; a task whose worker died is re-run elsewhere (up to MAX_LOST times), unless it had already
finished, which it never does twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, Protocol

from orchestrator.execute.resources import resources_for
from orchestrator.execute.state import RunState, Status
from orchestrator.execute.worker import InputRef, NodeTask, TaskResult
from orchestrator.plan import Node
from orchestrator.track import HEARTBEAT_SECONDS, Tracker
from orchestrator.track.claims import Claim
from orchestrator.track.resilient import deferring_signals

MAX_LOST = 3  # times a node may lose its worker before it counts as failed
WAIT_POLL_SECONDS = 2.0  # how often a node another sweep is computing is looked for in the store


@dataclass
class Finished:
    task: NodeTask
    result: Optional[TaskResult] = None
    error: Optional[str] = None  # the handler raised: its traceback
    lost: Optional[str] = None  # the worker died: why


class Pool(Protocol):
    name: str
    has_gpus: bool

    def describe(self) -> str: ...
    def can_start(self, resources: dict) -> bool: ...
    def start(self, task: NodeTask) -> None: ...
    def finished(self, timeout: Optional[float]) -> list[Finished]: ...
    def retire_idle(self) -> None: ...
    def halt(self) -> None: ...
    def close(self) -> None: ...


class Heartbeat(threading.Thread):
    """Keeps this sweep's claimed runs alive in the store, so other sweeps wait for them instead of taking over."""

    def __init__(self, tracker, run_ids: Callable[[], list[str]]):
        super().__init__(daemon=True, name="unlearn-sweep-heartbeat")
        self.tracker, self.run_ids, self.stop = tracker, run_ids, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            try:
                self.tracker.claims.heartbeat(self.run_ids())
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                pass


class Scheduler:
    def __init__(
        self,
        state: RunState,
        pool: Pool,
        tracker: Tracker,
        parent_run_id: str,
        retries: int = 0,
        on_change: Callable[[Node], None] = lambda node: None,
        targets: Optional[list[Node]] = None,
    ):
        """`targets`: run only these nodes and what they need (default: the whole DAG)."""
        self.state, self.pool, self.tracker, self.parent = state, pool, tracker, parent_run_id
        self.sweep_id, self.retries, self.on_change = state.sweep_id, retries, on_change
        dag = state.plan.dag
        needed = set(dag) if targets is None else _with_ancestors(targets)
        # Only a run of the whole sweep links what it found cached: a search's phases and trials run parts of it,
        # and the run of the whole sweep that follows them finds the same nodes and links each once.
        self.links = targets is None
        self.pending: list[Node] = [n for n in dag if n in needed]  # topological; retried nodes go to the front
        self.in_flight: dict[str, Node] = {}  # claimed run id -> node
        self.waiting: dict[Node, str] = {}  # node -> the run (of another sweep) computing it
        self.failures: Counter = Counter()
        self.losses: Counter = Counter()

    def run(self) -> None:
        # The sweep's own run beats too, so `status` tells a running sweep from one whose driver died.
        heartbeat = Heartbeat(self.tracker, lambda: [self.parent, *self.in_flight])
        heartbeat.start()
        try:
            while self.pending or self.in_flight or self.waiting:
                self._start_ready()
                if self.in_flight:
                    for done in self.pool.finished(WAIT_POLL_SECONDS if self.waiting else None):
                        self._settle(done)
                elif self.waiting:
                    time.sleep(WAIT_POLL_SECONDS)
                self._check_waiting()
        except BaseException as error:  # a signal, a lost store, a bug: the runs in flight will never finish
            # Their workers are stopped first: one left running would record its node after the run was marked
            # KILLED (a stopped sweep's results must be what its summary and the store say).
            try:
                self.pool.halt()
            except Exception:  # noqa: BLE001 - Ray itself gone: its workers with it; the runs are marked all the same
                pass
            self._abandon(f"the sweep stopped: {type(error).__name__}: {error}"[:500])
            raise
        finally:
            heartbeat.stop.set()

    def _abandon(self, why: str) -> None:
        """Marks the runs in flight KILLED (or FINISHED where the result was recorded in full), each on its own, so
        one the store cannot take does not keep the others RUNNING; a rerun takes over whatever is left."""
        for run_id in list(self.in_flight):
            try:
                self.tracker.claims.kill(run_id, why)
            except Exception:  # noqa: BLE001 - the store is gone: the next run finds these runs' driver dead
                pass

    # -- steps ----------------------------------------------------------------------------------------------------
    def _start_ready(self) -> None:
        for node in list(self.pending):
            if self.state.blocked(node):
                self._set(node, Status.SKIPPED)
            elif all(self.state[inp].status.done for inp in node.inputs.values()):
                self._start(node)

    def _start(self, node: Node) -> None:
        """A node whose inputs are done: found in the store, or claimed and handed to the pool (or left pending
        until the pool has room for it)."""
        if node not in self.state.missed and self.state.lookup(node):
            self.pending.remove(node)
            self._link(node)
            return
        self.state.missed.add(node)  # not in the store: the claim below catches a result that arrives later
        resources = resources_for(self.state.plan.spec.resources, node.kind, node.method, self.pool.has_gpus)
        if not self.pool.can_start(resources):
            return
        # A stop signal during the claim is raised once its run is in `in_flight`, where `_abandon` finds it: raised
        # between the run's creation and its bookkeeping, it left the run RUNNING with no one to end it.
        with deferring_signals():
            claim = self.tracker.claims.claim(node, self.sweep_id, self.parent)
            self.pending.remove(node)
            if claim.holder is None:
                self.in_flight[claim.run_id] = node
        if claim.holder is not None:
            self.waiting[node] = claim.holder
            self._set(node, Status.WAITING)
            return
        self.pool.start(self._task(node, claim, resources))
        self._set(node, Status.RUNNING)

    def _task(self, node: Node, claim: Claim, resources: dict) -> NodeTask:
        state = self.state
        inputs = {role: InputRef(inp.key, state[inp].run_id, state[inp].result) for role, inp in node.inputs.items()}
        forget_set = state.forget_set_for(node) if node.reads_forget_set else None
        return NodeTask(
            node.key, node.kind, node.config, inputs, claim.run_id, forget_set, resources, claim.artifact_uri
        )

    def _settle(self, done: Finished) -> None:
        node = self.in_flight.pop(done.task.run_id)
        state = self.state[node]
        if done.result is not None:
            state.run_id, state.result, state.seconds = done.task.run_id, done.result.result, done.result.seconds
            self._set(node, Status.EXECUTED)
        elif done.lost is not None:
            self._settle_lost(node, done)
        else:
            self.tracker.claims.fail(done.task.run_id, done.error)
            if self._recompute_corrupt_inputs(node):  # not the node's fault: run it again once its inputs are redone
                self.pending.insert(0, node)
                self._set(node, Status.PENDING)
                return
            self.failures[node] += 1
            self._retry_or_fail(node, self.failures[node] <= self.retries, done.error.strip().splitlines()[-1])

    def _settle_lost(self, node: Node, done: Finished) -> None:
        """Its worker died: executed if its result was recorded in full before that, else run again elsewhere."""
        self.tracker.claims.kill(done.task.run_id, f"worker died: {done.lost}")  # FINISHED if its result is all there
        found = self.tracker.artifacts.find(node.key)
        if found is not None and found.run_id == done.task.run_id:
            self.state[node].run_id, self.state[node].result = found.run_id, found.result
            self._set(node, Status.EXECUTED)
            return
        self.losses[node] += 1
        lost = f"its worker died {self.losses[node]} times: {done.lost}"
        self._retry_or_fail(node, self.losses[node] <= MAX_LOST, lost)

    def _recompute_corrupt_inputs(self, node: Node) -> bool:
        """Inputs whose stored checkpoint turned out corrupt when the node loaded it (their runs are FAILED now)
        go back to pending, so they are recomputed before the node runs again. True if there were any."""
        state = self.state
        corrupt = [
            inp
            for inp in node.inputs.values()
            if state[inp].status == Status.PENDING
            or (state[inp].run_id is not None and not self.tracker.artifacts.is_result(state[inp].run_id))
        ]
        for inp in corrupt:
            if state[inp].status != Status.PENDING:
                state[inp].run_id, state[inp].result = None, None
                self.state.missed.discard(inp)
                self.pending.insert(0, inp)
                self._set(inp, Status.PENDING)
        return bool(corrupt)

    def _retry_or_fail(self, node: Node, again: bool, error: str) -> None:
        if again:
            self.pending.insert(0, node)
            self._set(node, Status.PENDING)
        else:
            self.state[node].error = error
            self._set(node, Status.FAILED)

    def _check_waiting(self) -> None:
        for node, holder in list(self.waiting.items()):
            if self.state.lookup(node):  # the other sweep's result: a cached node for this one
                del self.waiting[node]
                self._link(node)
            elif not self.tracker.claims.holder_alive(holder):  # it failed or its sweep died: claim it again
                del self.waiting[node]
                self.pending.insert(0, node)
                self._set(node, Status.PENDING)

    def _link(self, node: Node) -> None:
        if self.links and self.state[node].status == Status.CACHED:  # another sweep's run: say this one used it too
            self.tracker.lineage.link(node, self.state[node].run_id, self.sweep_id, self.parent)
        self.on_change(node)

    def _set(self, node: Node, status: Status) -> None:
        if status == Status.SKIPPED:
            self.pending.remove(node)
        self.state[node].status = status
        self.on_change(node)


def _with_ancestors(nodes: list[Node]) -> set[Node]:
    seen: set[Node] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.inputs.values())
    return seen


def run_sweep(
    state: RunState,
    pool: Pool,
    tracker: Tracker,
    parent_run_id: str,
    retries: int = 0,
    on_change: Callable[[Node], None] = lambda node: None,
    targets: Optional[list[Node]] = None,
) -> None:
    Scheduler(state, pool, tracker, parent_run_id, retries, on_change, targets).run()
