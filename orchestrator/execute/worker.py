"""Where a node actually runs: a `NodeTask` (everything a worker needs, picklable: the node's typed config among it) and
a `NodeWorker` that runs the task's node kind (looked up by name in workloads.nodes) against its own tracker, keeping
datasets on its device (memoised per process by `load_data`) and recently used checkpoints in memory. The local
executor holds one NodeWorker in-process; the Ray executor one per actor.

Each task gets a training checkpoint file in this machine's cache folder, named by the node's content key
(`<cache>/checkpoints/<key>.pt`; one computation per key at a time, so one writer), which the long training kinds write
every UNLEARN_SWEEP_CHECKPOINT_SECONDS (default 300) or UNLEARN_SWEEP_CHECKPOINT_STEPS steps and resume from when the
node runs again after an interruption; it is removed once the node's result is recorded. When the sweep's artifacts
live off this machine (S3 on a cluster), or UNLEARN_SWEEP_CHECKPOINT_STORE=artifacts says so, every checkpoint is
also uploaded to the artifact store under the node's key, so a node whose machine was lost resumes on any other
worker (orchestrator/track/checkpoints.py); UNLEARN_SWEEP_CHECKPOINT_STORE=local keeps them on the machine alone.

On a GPU: the state a node computed is recorded and kept for its children as a CPU copy, as a parent read from the
store comes (so a distance or LMC node mixes no devices, and the cache holds no GPU memory); the node's precision
sets the process's fp32 arithmetic (TF32 or IEEE) before it runs; the allocator's cache is emptied after it, for the
workers that share the GPU; and the node records what makes its numbers reproducible (`runtime`: the GPU, CUDA and
cuDNN, TF32 and determinism, the precision that ran, the generator's device)."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import torch

from orchestrator.local_cache import cache_dir
from orchestrator.track import Tracker
from orchestrator.track.checkpoints import StoredCheckpoint, checkpoint_root
from workloads.checkpoint import TrainingCheckpoint
from workloads.forget import ForgetSet
from workloads.nodes import NODE_KINDS, DataNodeConfig, InputNode, RunContext, load_data
from workloads.runtime import configure_device, release_device_memory, runtime_facts
from workloads.speed import effective_precision, set_fp32_math

STATE_CACHE_SIZE = 8
# MLflow's fluent API reads the active run, experiment and model from these. Inherited from whoever started the driver
# (a shell, a notebook, an MLflow Project, a Ray cluster started from either), an MLFLOW_RUN_ID overrides the parent
# run a node's code asks for (MLflow issue 15713) and sends its records to an unrelated run. Nodes record into their
# claimed run by id; a library inside a node that uses the fluent API must not find any of these either.
INHERITED_MLFLOW_CONTEXT = (
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_ACTIVE_MODEL_ID",
    "_MLFLOW_ACTIVE_MODEL_ID",
)


@dataclass(frozen=True)
class InputRef:
    key: str
    run_id: str
    result: dict


@dataclass
class NodeTask:
    key: str
    kind: str
    config: DataNodeConfig  # of the kind's config class
    inputs: dict[str, InputRef]
    run_id: str  # the claimed MLflow run this task records into
    forget_set: Optional[ForgetSet] = None
    resources: dict = field(default_factory=dict)
    artifact_uri: Optional[str] = None  # the claimed run's (saves the worker a read of the run)


@dataclass
class TaskResult:
    result: dict
    seconds: float  # the node's own compute time, recording excluded


def training_checkpoint(key: str, tracker: Optional[Tracker] = None) -> TrainingCheckpoint:
    """The node's checkpoint file on this machine and how often to write it (read from the environment each time),
    with its copy in the tracker's artifact store when checkpoints are kept there (track/checkpoints.py)."""
    root = checkpoint_root(tracker.store) if tracker is not None else None
    return TrainingCheckpoint(
        cache_dir() / "checkpoints" / f"{key}.pt",
        int(os.environ.get("UNLEARN_SWEEP_CHECKPOINT_STEPS", 0)),
        float(os.environ.get("UNLEARN_SWEEP_CHECKPOINT_SECONDS", 300)),
        remote=None if root is None else StoredCheckpoint(root, key, tracker.uri),
    )


def forget_inherited_mlflow_context() -> None:
    """Drops INHERITED_MLFLOW_CONTEXT from this process's environment, where nodes run: the driver's own for the local
    executor, a Ray actor's for the Ray executor. A Ray worker inherits its raylet's environment, which the driver
    cannot change (a runtime_env sets variables, it cannot unset them), so each worker drops them itself."""
    for name in INHERITED_MLFLOW_CONTEXT:
        os.environ.pop(name, None)


def on_cpu(state: dict) -> dict:
    """A model's state as the store gives it back: detached CPU tensors (one copy off a GPU, none on the CPU)."""
    return {name: tensor.detach().cpu() for name, tensor in state.items()}


class NodeWorker:
    def __init__(self, tracker: Tracker, device: torch.device, gpu_share: float = 1.0):
        """`gpu_share`: the fraction of the device's GPU this worker holds (a Ray actor's num_gpus), which caps the
        memory it may allocate."""
        forget_inherited_mlflow_context()
        self.tracker, self.device = tracker, device
        configure_device(device, gpu_share)
        # A parent read by many children is loaded once; bounded for ResNet-sized sweeps. CPU tensors only.
        self._states: OrderedDict[str, dict] = OrderedDict()

    def run(self, task: NodeTask) -> TaskResult:
        """Executes the task and records it into its claimed run (FINISHED). Raises what the handler raises."""
        start = time.perf_counter()
        config = task.config
        precision = effective_precision(config.speed, self.device)
        if self.device.type == "cuda":
            set_fp32_math(precision)
        runtime = runtime_facts(self.device) | {"precision": precision}  # in the thread that runs the node
        checkpoint = training_checkpoint(task.key, self.tracker)
        try:
            output = self._compute(task, checkpoint)
            output.state = None if output.state is None else on_cpu(output.state)
        finally:
            release_device_memory(self.device)  # after the state left the GPU: the model's memory goes back too
        output.result["runtime"] = runtime
        seconds = time.perf_counter() - start
        resumed = {"resumed_from_step": str(checkpoint.resumed_step)} if checkpoint.resumed_step else {}
        self.tracker.artifacts.record(task.run_id, output, seconds, resumed, task.artifact_uri)
        checkpoint.clear()
        if output.state is not None:
            self.keep(task.key, output.state)
        return TaskResult(output.result, seconds)

    def _compute(self, task: NodeTask, checkpoint: TrainingCheckpoint):
        config = task.config
        data = load_data(config.dataset, self.device, config.speed)
        if task.forget_set is not None:  # canaries relabelled; a task space's corruption applied
            data = task.forget_set.training_data(data)
        inputs = {role: self._input(ref) for role, ref in task.inputs.items()}
        context = RunContext(self.device, data, task.forget_set, checkpoint)
        return NODE_KINDS.get(task.kind).run(config, inputs, context)

    def keep(self, key: str, state: dict) -> None:
        """Keeps a finished node's state for its children, on the CPU, as a parent read from the store comes."""
        self._remember(key, on_cpu(state))

    def _input(self, ref: InputRef) -> InputNode:
        def load_state():
            if ref.key not in self._states:
                self._remember(ref.key, self.tracker.artifacts.load_state(ref.run_id))
            self._states.move_to_end(ref.key)
            return self._states[ref.key]

        return InputNode(ref.result, load_state, lambda: self.tracker.artifacts.load_tensors(ref.run_id))

    def _remember(self, key: str, state: dict) -> None:
        self._states[key] = state
        while len(self._states) > STATE_CACHE_SIZE:
            self._states.popitem(last=False)
