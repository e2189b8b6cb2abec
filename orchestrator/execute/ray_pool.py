"""The Ray executor's workers: long-lived actors, one per task slot, each holding its datasets on its device and a
few recent checkpoints in memory, so a stream of short nodes pays for loading once per worker, not once per node.

Actors are created per resource shape ({num_cpus, num_gpus}) as tasks of that shape become ready, as long as the
cluster has room; an idle actor of another shape is retired to make room rather than letting a task wait forever.
Room is counted per machine as well as in total: Ray places a fractional GPU request on one GPU and a whole one on a
free GPU, so two 1-GPU machines each running two quarter-GPU actors have half a GPU free on each and no free GPU. An
actor that Ray has not placed a few seconds after its creation, although some machine of the cluster could hold it,
is waiting for room our other actors hold: no task starts on an actor of another shape until it is placed, and idle
actors of other shapes are retired, one a second, until it is.

Where a node runs: the sweep's `device`. `cuda` means every node whose resources hold a GPU share runs on a GPU; the
built-in shares apply even while an autoscaling cluster has no GPU machine yet (it starts one for the demand), and a
worker that holds a GPU but cannot use CUDA stops the sweep with one message (DeviceUnavailable) instead of computing
on its machine's CPU. `auto` reads whether the cluster has GPUs (now, or in its autoscaler's configuration when Ray
reports one). `cpu` never asks for a GPU. A worker on a fractional GPU allocates at most its share of the GPU's memory
(workloads/runtime.py `configure_device`).

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
# Seconds an actor that some machine could hold may take to be placed and to start (its process, torch, the MLflow
# client) before it counts as waiting for room that our other actors hold.
PLACEMENT_GRACE = 20.0


@ray.remote(max_restarts=0)
class NodeActor:
    def __init__(self, tracker_args: tuple, num_cpus: float, num_gpus: float, device: str = "auto"):
        from workloads.runtime import configure_torch

        configure_torch(max(1, int(num_cpus)))  # first, before any torch op: its share of the cores, denormals flushed
        from orchestrator.track import Tracker
        from workloads.runtime import worker_device

        # Ray points CUDA_VISIBLE_DEVICES at this actor's GPU; one it cannot use raises DeviceUnavailable here.
        self.device = worker_device(device, num_gpus > 0)
        self.worker = NodeWorker(Tracker(*tracker_args), self.device, min(1.0, num_gpus) if num_gpus else 1.0)
        context = ray.get_runtime_context()
        self.where = {"ray_node": context.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()]}

    def placed(self) -> dict:
        """Where Ray placed this actor: its node's id and the GPUs it was given."""
        return {**self.where, "device": str(self.device)}

    def run(self, task: NodeTask):
        return self.worker.run(task)


@dataclass(eq=False)
class Worker:
    handle: ray.actor.ActorHandle
    shape: tuple[float, float]  # (num_cpus, num_gpus)
    task: Optional[NodeTask] = None
    idle_since: float = field(default_factory=time.monotonic)
    placed: Optional[ray.ObjectRef] = None  # answers once Ray has placed the actor and it has started
    started: bool = False
    fits_since: Optional[float] = None  # since when a machine of the cluster could hold it


class RayPool:
    name = "ray"

    def __init__(self, tracker, address: Optional[str] = None, max_workers: Optional[int] = None, device: str = "auto"):
        self.owns_ray = not ray.is_initialized()
        # A Ray this pool started itself never grows; a cluster it connected to may (an autoscaler adds machines).
        self.fixed_size = self.owns_ray and address is None and not os.environ.get("RAY_ADDRESS")
        if self.owns_ray:
            # Only non-secret settings travel with the job; S3 credentials come from each node's own environment.
            env = {k: os.environ[k] for k in ("MLFLOW_S3_ENDPOINT_URL",) if k in os.environ}
            ray.init(
                address=address,
                log_to_driver=True,
                runtime_env={"env_vars": env} if env else None,
                include_dashboard=False if address is None else None,
            )
        self.tracker_args, self.max_workers, self.device = tracker.args, max_workers, device
        self.workers: list[Worker] = []
        self.running: dict[ray.ObjectRef, Worker] = {}
        self._measure()
        self.has_gpus = self._uses_gpus()  # chooses the built-in resources (execute/resources.py)

    def _measure(self) -> None:
        self.total = {name: ray.cluster_resources().get(resource, 0.0) for name, resource in RESOURCE_NAMES.items()}
        self.machines = [
            {name: node["Resources"].get(resource, 0.0) for name, resource in RESOURCE_NAMES.items()}
            for node in ray.nodes()
            if node.get("Alive")
        ]
        self._measured = time.monotonic()

    def _uses_gpus(self) -> bool:
        if self.device == "cpu":
            return False
        if self.device.startswith("cuda"):
            if self.fixed_size and self.total["num_gpus"] == 0:
                raise SpecError(f"device: {self.device}, but the local Ray has no GPU; run with device=auto or cpu")
            return True
        return self.total["num_gpus"] > 0 or autoscaler_gpus() > 0

    def describe(self) -> str:
        limit = f", at most {self.max_workers} workers" if self.max_workers else ""
        gpus = "nodes ask for GPUs" if self.has_gpus else "nodes ask for no GPU"
        total = f"{self.total['num_cpus']:g} CPUs, {self.total['num_gpus']:g} GPUs"
        return f"ray ({total}, device {self.device}: {gpus}{limit})"

    # -- placement ------------------------------------------------------------------------------------------------
    def can_start(self, resources: dict) -> bool:
        shape = _shape(resources)
        if time.monotonic() - self._measured > 5.0:  # an autoscaling cluster grows while the sweep runs
            self._measure()
        waiting = self._waiting_for_room()
        if waiting is not None and waiting.shape != shape:
            return False  # the room it waits for goes to it first
        if not self._fits_a_machine(shape):
            if self.fixed_size:  # nothing will ever add a machine to our own local Ray
                raise SpecError(
                    f"resources: a node asks for {resources} but no machine of the local Ray has that much "
                    f"({self.total} in all); lower it in the sweep's resources section"
                )
            # One actor of this shape that nobody can place yet: the autoscaler sees the demand and adds a node.
            return not any(w.shape == shape for w in self.workers)
        if any(w.task is None and w.shape == shape for w in self.workers):
            return True
        return self._room_after_retiring(shape) is not None

    def _fits_a_machine(self, shape) -> bool:
        """Whether one machine of the cluster could hold an actor of this shape (Ray places each on one machine)."""
        return any(shape[0] <= m["num_cpus"] + 1e-9 and shape[1] <= m["num_gpus"] + 1e-9 for m in self.machines)

    def _waiting_for_room(self) -> Optional[Worker]:
        """The first actor that some machine could hold but Ray has not placed after PLACEMENT_GRACE seconds: the
        room it needs is held, in pieces on several machines or whole on one, by our other actors."""
        pending = [w for w in self.workers if not w.started]
        if not pending:
            return None
        ready, _ = ray.wait([w.placed for w in pending], num_returns=len(pending), timeout=0)
        now = time.monotonic()
        for worker in pending:
            worker.started = worker.placed in ready
            if worker.fits_since is None and self._fits_a_machine(worker.shape):
                worker.fits_since = now
        late = lambda w: not w.started and w.fits_since is not None and now - w.fits_since > PLACEMENT_GRACE
        return next((w for w in pending if late(w)), None)

    def _make_room(self) -> None:
        """While an actor waits for room: retire the longest-idle actor (one per call). Of the same shape too: one
        that fell idle after the waiting actor was made (its node went to the new actor because a lost machine was
        still counted in the cluster's size) would otherwise hold the room the waiting actor's node needs forever."""
        waiting = self._waiting_for_room()
        if waiting is None:
            return
        idle = [w for w in self.workers if w.task is None and w.started]
        if idle:
            self._retire(min(idle, key=lambda w: w.idle_since))

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
                self._retire(retired)
            options = {"num_cpus": shape[0], "num_gpus": shape[1]}
            handle = NodeActor.options(**options).remote(self.tracker_args, *shape, self.device)
            worker = Worker(handle, shape, placed=handle.placed.remote())
            self.workers.append(worker)
        worker.task = task
        self.running[worker.handle.run.remote(task)] = worker

    def _retire(self, worker: Worker) -> None:
        self.workers.remove(worker)
        ray.kill(worker.handle)

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
            if not ready:
                self._make_room()
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
            self._retire(worker)
            return Finished(task, lost=f"out of memory{share_of(worker)}: {str(error.cause).splitlines()[0][:300]}")
        except RayError as error:  # the actor died (process killed, node lost, killed by Ray's memory monitor)
            self.workers.remove(worker)
            if "DeviceUnavailable" in str(error):  # its GPU is unusable: so is every node that wants one there
                raise SpecError(f"device: {self.device}: a Ray worker {device_problem(error)}") from None
            return Finished(task, lost=why_lost(error))

    def retire_idle(self) -> None:
        for worker in [w for w in self.workers if w.task is None]:
            self._retire(worker)

    def halt(self) -> None:
        """Kills the workers computing a node, at once (the sweep is stopping): their runs are marked KILLED next."""
        for worker in list(self.running.values()):
            self._retire(worker)
        self.running.clear()

    def close(self) -> None:
        for worker in self.workers:
            ray.kill(worker.handle)
        self.workers.clear()
        if self.owns_ray:
            ray.shutdown()


def autoscaler_gpus() -> float:
    """The GPUs the cluster's autoscaler can add, where Ray reports its configuration (autoscaler v2, KubeRay); 0 when
    it does not (the cluster launcher's v1 autoscaler): then only `device: cuda` asks for GPUs before they exist."""
    try:
        from ray._private.state import state

        found = state.get_max_resources_from_cluster_config() or {}
    except Exception:  # noqa: BLE001 - a private API of Ray, absent from older versions
        return 0.0
    return float(found.get("GPU", 0) or 0)


def out_of_memory(error: Optional[BaseException]) -> bool:
    """A node that ran out of memory: MemoryError, torch's CUDA OutOfMemoryError, or its CPU allocator's failure."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def share_of(worker: Worker) -> str:
    """For a node that ran out of memory on a fractional GPU: the share it had, which is where the fix goes."""
    share = worker.shape[1]
    return f" (on {share:g} of a GPU: give its kind or method more in `resources`)" if 0 < share < 1 else ""


def device_problem(error: RayError) -> str:
    """The worker's own words on why it cannot use its GPU (the DeviceUnavailable line of Ray's message)."""
    lines = [line.strip() for line in str(error).splitlines() if "DeviceUnavailable" in line]
    return lines[-1].split("DeviceUnavailable:", 1)[-1].strip() if lines else str(error).splitlines()[0]


def why_lost(error: RayError) -> str:
    """One line on why an actor died: Ray's own explanation (the last line of its message) rather than the generic
    first one; `out of memory:` first when Ray's memory monitor killed it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("\t")]
    text = f"{type(error).__name__}: {(lines[-1] if lines else '')[:300]}"
    oom = isinstance(error, OutOfMemoryError) or "memory pressure" in str(error)
    return f"out of memory: {text}" if oom else text


def _shape(resources: dict) -> tuple[float, float]:
    return float(resources.get("num_cpus", 1.0)), float(resources.get("num_gpus", 0.0))
