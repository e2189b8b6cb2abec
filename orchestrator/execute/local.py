"""The local executor's pool: one task at a time, in this process, on the sweep's device. No Ray needed.

One device: `device: auto` is the machine's first GPU (`cuda:N` picks another). On a machine with several GPUs,
`--executor ray` starts a local Ray that uses all of them, several nodes at a time (the sweep's `resources`)."""

from __future__ import annotations

import traceback
from typing import Optional

import torch

from orchestrator.execute.scheduler import Finished
from orchestrator.execute.worker import NodeTask, NodeWorker
from orchestrator.spec import SpecError
from orchestrator.track import StoreUnavailable
from workloads.runtime import device_here


def local_device(preference: str) -> torch.device:
    """The device the local executor runs on; SpecError naming `device` when this machine lacks it."""
    try:
        return device_here(preference)
    except ValueError as error:
        raise SpecError(str(error)) from None


class LocalPool:
    """One task at a time, in this process, on the sweep's device."""

    name = "local"

    def __init__(self, tracker, device: str = "auto"):
        self.device = local_device(device)
        self.has_gpus = self.device.type == "cuda"
        self.worker = NodeWorker(tracker, self.device)
        self.queue: list[NodeTask] = []

    def describe(self) -> str:
        gpus = torch.cuda.device_count() if self.device.type == "cuda" else 0
        others = f" (1 of {gpus} GPUs: --executor ray uses all of them)" if gpus > 1 else ""
        return f"local on {self.device}{others}, {torch.get_num_threads()} torch threads"

    def can_start(self, resources: dict) -> bool:
        return not self.queue

    def start(self, task: NodeTask) -> None:
        self.queue.append(task)

    def finished(self, timeout: Optional[float]) -> list[Finished]:
        if not self.queue:
            return []
        task = self.queue.pop()
        try:
            return [Finished(task, self.worker.run(task))]
        except StoreUnavailable:  # not the node's fault: the sweep stops (a rerun computes it again)
            raise
        except Exception:  # noqa: BLE001 - a failed node must not stop the sweep
            return [Finished(task, error=traceback.format_exc())]

    def retire_idle(self) -> None:
        pass

    def halt(self) -> None:
        pass  # the node ran in this thread, which the stop interrupted

    def close(self) -> None:
        pass
