"""The Ray executor's workers: long-lived actors, one per task slot, each holding its datasets on its device and a
few recent checkpoints in memory, so a stream of short nodes pays for loading once per worker, not once per node.

Actors are created per resource shape ({num_cpus, num_gpus}) as tasks of that shape become ready, as long as the
cluster has room; an idle actor of another shape is retired to make room rather than letting a task wait forever.
A task's exception comes back as a failed node (the scheduler may retry it); an actor that dies (its process
killed, its node lost, killed by Ray's memory monitor) comes back as a lost node, which the scheduler re-runs on
another actor. A node that ran out of memory inside its actor (MemoryError, CUDA out of memory, the CPU allocator
failing) is lost too, not failed: its actor is killed, so the node runs again in a fresh process."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

import ray
from ray.exceptions import OutOfMemoryError, RayError, RayTaskError

from orchestrator.execute.scheduler import Finished
from orchestrator.execute.worker import NodeTask, NodeWorker
from orchestrator.spec import SpecError

RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}
WAIT_SLICE = 1.0  # seconds the driver blocks in ray.wait at a time


@ray.remote(max_restarts=0)
class NodeActor:
    def __init__(self, tracker_args: tuple, num_cpus: float, num_gpus: float):
        from workloads.runtime import configure_torch

        configure_torch(max(1, int(num_cpus)))  # first, before any torch op: its share of the cores, denormals flushed
        import torch

        from orchestrator.track import Tracker

        # Ray points CUDA_VISIBLE_DEVICES at this actor's GPU; a GPU that is only a logical resource means the CPU.
        on_gpu = num_gpus > 0 and torch.cuda.is_available()
        self.worker = NodeWorker(Tracker(*tracker_args), torch.device("cuda" if on_gpu else "cpu"))

    def run(self, task: NodeTask):
        return self.worker.run(task)


@dataclass(eq=False)
class Worker:
    handle: ray.actor.ActorHandle
    shape: tuple[float, float]  # (num_cpus, num_gpus)
    task: Optional[NodeTask] = None
    idle_since: float = field(default_factory=time.monotonic)


class RayPool:
    name = "ray"

    def __init__(self, tracker, address: Optional[str] = None, max_workers: Optional[int] = None):
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            # Only non-secret settings travel with the job; S3 credentials come from each node's own environment.
            env = {k: os.environ[k] for k in ("MLFLOW_S3_ENDPOINT_URL",) if k in os.environ}
            ray.init(
                address=address,
                log_to_driver=True,
                runtime_env={"env_vars": env} if env else None,
                include_dashboard=False if address is None else None,
            )
        self.tracker_args = tracker.args
        self.max_workers = max_workers
        self.workers: list[Worker] = []
        self.running: dict[ray.ObjectRef, Worker] = {}
        self._measure()
        self.has_gpus = self.total["num_gpus"] > 0  # chooses the built-in resources; set them explicitly on autoscalers

    def _measure(self) -> None:
        self.total = {name: ray.cluster_resources().get(resource, 0.0) for name, resource in RESOURCE_NAMES.items()}
        self._measured = time.monotonic()

    def describe(self) -> str:
        limit = f", at most {self.max_workers} workers" if self.max_workers else ""
        return f"ray ({self.total['num_cpus']:g} CPUs, {self.total['num_gpus']:g} GPUs{limit})"

    # -- placement ------------------------------------------------------------------------------------------------
    def can_start(self, resources: dict) -> bool:
        shape = _shape(resources)
        if time.monotonic() - self._measured > 5.0:  # an autoscaling cluster grows while the sweep runs
            self._measure()
        if shape[0] > self.total["num_cpus"] or shape[1] > self.total["num_gpus"]:
            if self.owns_ray:  # nothing will ever add a node to our own local Ray
                raise SpecError(
                    f"resources: a node asks for {resources} but the local Ray has {self.total}; "
                    "lower it in the sweep's resources section"
                )
            # One actor of this shape that nobody can place yet: the autoscaler sees the demand and adds a node.
            return not any(w.shape == shape for w in self.workers)
        if any(w.task is None and w.shape == shape for w in self.workers):
            return True
        return self._room_after_retiring(shape) is not None

    def _room_after_retiring(self, shape) -> Optional[list[Worker]]:
        """The idle workers of other shapes to retire so that a worker of `shape` fits (None: it cannot fit)."""
        held = [sum(w.shape[i] for w in self.workers) for i in range(2)]
        idle = sorted((w for w in self.workers if w.task is None and w.shape != shape), key=lambda w: w.idle_since)
        retire: list[Worker] = []
        limit = self.max_workers or float("inf")
        while not (
            held[0] + shape[0] <= self.total["num_cpus"] + 1e-9
            and held[1] + shape[1] <= self.total["num_gpus"] + 1e-9
            and len(self.workers) - len(retire) < limit
        ):
            if not idle:
                return None
            worker = idle.pop(0)
            retire.append(worker)
            held = [held[i] - worker.shape[i] for i in range(2)]
        return retire

    def start(self, task: NodeTask) -> None:
        shape = _shape(task.resources)
        worker = next((w for w in self.workers if w.task is None and w.shape == shape), None)
        if worker is None:
            for retired in self._room_after_retiring(shape) or []:
                self.workers.remove(retired)
                ray.kill(retired.handle)
            handle = NodeActor.options(num_cpus=shape[0], num_gpus=shape[1]).remote(self.tracker_args, *shape)
            worker = Worker(handle, shape)
            self.workers.append(worker)
        worker.task = task
        self.running[worker.handle.run.remote(task)] = worker

    # -- results --------------------------------------------------------------------------------------------------
    def finished(self, timeout: Optional[float]) -> list[Finished]:
        if not self.running:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        ready: list = []
        while not ready and (deadline is None or time.monotonic() < deadline):
            # In slices, so a SIGTERM or SIGINT is handled (in this, the main thread) within a second.
            wait = WAIT_SLICE if deadline is None else max(0.0, min(WAIT_SLICE, deadline - time.monotonic()))
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=wait)
        if ready:  # whatever else is done too, without waiting
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref) -> Finished:
        worker = self.running.pop(ref)
        task, worker.task, worker.idle_since = worker.task, None, time.monotonic()
        try:
            return Finished(task, ray.get(ref))
        except RayTaskError as error:  # the node's own code raised
            if not out_of_memory(error.cause):
                return Finished(task, error=str(error))
            # Its process may hold fragmented or leaked memory: a fresh actor runs it again, as for a dead worker.
            self.workers.remove(worker)
            ray.kill(worker.handle)
            return Finished(task, lost=f"out of memory: {str(error.cause).splitlines()[0][:300]}")
        except RayError as error:  # the actor died (process killed, node lost, killed by Ray's memory monitor)
            self.workers.remove(worker)
            return Finished(task, lost=why_lost(error))

    def retire_idle(self) -> None:
        for worker in [w for w in self.workers if w.task is None]:
            self.workers.remove(worker)
            ray.kill(worker.handle)

    def close(self) -> None:
        for worker in self.workers:
            ray.kill(worker.handle)
        self.workers.clear()
        if self.owns_ray:
            ray.shutdown()


def out_of_memory(error: Optional[BaseException]) -> bool:
    """A node that ran out of memory: MemoryError, torch's CUDA OutOfMemoryError, or its CPU allocator's failure."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def why_lost(error: RayError) -> str:
    """One line on why an actor died: Ray's own explanation (the last line of its message) rather than the generic
    first one; `out of memory:` first when Ray's memory monitor killed it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("\t")]
    text = f"{type(error).__name__}: {(lines[-1] if lines else '')[:300]}"
    oom = isinstance(error, OutOfMemoryError) or "memory pressure" in str(error)
    return f"out of memory: {text}" if oom else text


def _shape(resources: dict) -> tuple[float, float]:
    return float(resources.get("num_cpus", 1.0)), float(resources.get("num_gpus", 0.0))
