"""The local executor's pool: one task at a time, in this process, on the sweep's device. No Ray needed."""

from __future__ import annotations

import traceback
from typing import Optional

import torch

from orchestrator.execute.scheduler import Finished
from orchestrator.execute.worker import NodeTask, NodeWorker
from orchestrator.track import StoreUnavailable
from workloads.train import pick_device


class LocalPool:
    """One task at a time, in this process, on the sweep's device."""

    name = "local"

    def __init__(self, tracker, device: str = "auto"):
        self.device = pick_device(device)
        self.has_gpus = self.device.type == "cuda"
        self.worker = NodeWorker(tracker, self.device)
        self.queue: list[NodeTask] = []

    def describe(self) -> str:
        return f"local on {self.device}, {torch.get_num_threads()} torch threads"

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

    def close(self) -> None:
        pass
