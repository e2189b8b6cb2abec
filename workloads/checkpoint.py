"""Periodic checkpoints of a long training loop, so that a node interrupted half-way (its driver or worker killed, its
machine preempted) resumes where it was instead of from scratch, and ends with the very weights and curve an
uninterrupted run gives: everything the loop's next step depends on is saved together (model, optimizer, learning-rate
schedule, the batch stream's generator state and permutation, the loss accumulated since the last curve point).

Pure PyTorch and the local file system: the orchestrator decides where the file lives (keyed by the node's content
key) and how often it is written, and hands a `TrainingCheckpoint` to the node in its RunContext. Files are written
atomically (temporary file, fsync, rename) and read with `weights_only=True`; one that cannot be read is discarded
and training starts from scratch. A checkpoint that cannot be written (a full disk) is skipped with a warning:
it is an insurance, never a reason for the node to fail."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch


@dataclass
class TrainingCheckpoint:
    path: Path
    every_steps: int = 0  # save after every this many steps (0: by time only)
    every_seconds: float = 300.0  # ... or once this much time has passed since the last save (0: by steps only)
    resumed_step: int = 0  # the step a load() found (0: none, training starts from scratch)
    saves: int = 0
    _last: float = field(default_factory=time.monotonic, repr=False)

    def due(self, step: int) -> bool:
        by_steps = self.every_steps > 0 and step % self.every_steps == 0
        by_time = self.every_seconds > 0 and time.monotonic() - self._last >= self.every_seconds
        return by_steps or by_time

    def load(self) -> Optional[dict]:
        """The saved state, or None (nothing saved, or a file that is not a readable checkpoint, which is removed)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            self.resumed_step = int(state["step"])
            return state
        except Exception as error:  # noqa: BLE001 - truncated, corrupt or not ours: start from scratch
            warnings.warn(
                f"training checkpoint {self.path} unreadable ({type(error).__name__}: {error}); starting over",
                stacklevel=2,
            )
            self.clear()
            return None

    def save(self, state: dict) -> bool:
        """Writes `state` (with its "step") atomically; False, with a warning, when it cannot be written."""
        self._last = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            with open(partial, "wb") as out:
                torch.save(state, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.path)
        except OSError as error:
            warnings.warn(f"training checkpoint not written to {self.path}: {error}; training goes on", stacklevel=2)
            partial.unlink(missing_ok=True)
            return False
        self.saves += 1
        return True

    def discard(self, why: str) -> None:
        """A readable checkpoint that cannot continue this training (saved by another recipe, or by a generator of
        another kind): removed with a warning, and training starts over, to the result of an uninterrupted run."""
        warnings.warn(f"training checkpoint {self.path} not resumed: {why}; starting over", stacklevel=3)
        self.resumed_step = 0
        self.clear()

    def clear(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".partial")):
            path.unlink(missing_ok=True)
