"""Periodic checkpoints of a long training loop, so that a node interrupted half-way (its driver or worker killed, its
machine preempted) resumes where it was instead of from scratch, and ends with the very weights and curve an
uninterrupted run gives: everything the loop's next step depends on is saved together (model, optimizer, learning-rate
schedule, the batch stream's generator state and permutation, the loss accumulated since the last curve point).

Pure PyTorch and the local file system: the orchestrator decides where the file lives (keyed by the node's content
key) and how often it is written, and hands a `TrainingCheckpoint` to the node in its RunContext. Files are written
atomically (temporary file, fsync, rename) and read with `weights_only=True`; one that cannot be read is discarded
and training starts from scratch. A checkpoint that cannot be written (a full disk) is skipped with a warning:
it is an insurance, never a reason for the node to fail.

The local file is the working copy. A checkpoint may also have a `remote` (a `CheckpointStore` the orchestrator
provides: on a cluster, the sweep's artifact store), so that another machine can resume it: every save is uploaded
there after the local write (an upload that fails warns and training goes on, as a full disk does); a load reads the
local file and the stored one (downloaded beside it, verified by the store) and resumes from the later step of the
two, so a machine that finds an older local copy of its own still resumes from where the last machine got; clearing
removes both. A stored checkpoint that does not verify or that torch refuses is removed with a warning, as an
unreadable local one is."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import torch


class CheckpointStore(Protocol):
    """Where a node's training checkpoint is kept beside the local file, for any machine to resume from."""

    def upload(self, path: Path) -> None:
        """Stores the file at `path` (replacing what was stored); raises when it cannot."""

    def download(self, path: Path) -> bool:
        """Writes the stored checkpoint to `path`: False when none is stored; raises when the stored one is not
        intact (truncated, not what was uploaded) or cannot be read."""

    def delete(self) -> None:
        """Removes the stored checkpoint, if any."""


@dataclass
class TrainingCheckpoint:
    path: Path
    every_steps: int = 0  # save after every this many steps (0: by time only)
    every_seconds: float = 300.0  # ... or once this much time has passed since the last save (0: by steps only)
    resumed_step: int = 0  # the step a load() found (0: none, training starts from scratch)
    saves: int = 0
    remote: Optional[CheckpointStore] = None  # a copy any machine can resume from (None: this machine's file only)
    uploads: int = 0
    _last: float = field(default_factory=time.monotonic, repr=False)
    _used: bool = field(default=False, repr=False)  # loaded or saved: the remote may hold something to clear

    def due(self, step: int) -> bool:
        by_steps = self.every_steps > 0 and step % self.every_steps == 0
        by_time = self.every_seconds > 0 and time.monotonic() - self._last >= self.every_seconds
        return by_steps or by_time

    def load(self) -> Optional[dict]:
        """The saved state of the later step of the local file and the stored copy, or None (nothing saved, or
        nothing readable: what cannot be read is removed, with a warning)."""
        self._used = True
        local = self._read(self.path) if self.path.is_file() else None
        stored = self._fetch()
        if stored is not None and (local is None or stored["step"] > local["step"]):
            os.replace(self._downloaded, self.path)  # the working copy from now on
            local = stored
        self._downloaded.unlink(missing_ok=True)
        if local is not None:
            self.resumed_step = int(local["step"])
        return local

    def save(self, state: dict) -> bool:
        """Writes `state` (with its "step") atomically, then uploads it to the remote; False, with a warning, when it
        cannot be written (an upload that fails warns too, and the local copy stays)."""
        self._last = time.monotonic()
        self._used = True
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
        if self.remote is not None:
            try:
                self.remote.upload(self.path)
                self.uploads += 1
            except Exception as error:  # noqa: BLE001 - the store unreachable or refusing: an insurance, never fatal
                warnings.warn(
                    f"training checkpoint not stored in {self.remote} ({type(error).__name__}: {error}); "
                    "training goes on",
                    stacklevel=2,
                )
        return True

    def discard(self, why: str) -> None:
        """A readable checkpoint that cannot continue this training (saved by another recipe, or by a generator of
        another kind): removed with a warning, and training starts over, to the result of an uninterrupted run."""
        warnings.warn(f"training checkpoint {self.path} not resumed: {why}; starting over", stacklevel=3)
        self.resumed_step = 0
        self.clear()

    def clear(self) -> None:
        """Removes the local file and the stored copy (a store that cannot be reached now: with a warning). A node
        that never loaded nor saved its checkpoint (it does not train) asks nothing of the store."""
        self._clear_local()
        if self.remote is not None and self._used:
            try:
                self.remote.delete()
            except Exception as error:  # noqa: BLE001 - left behind in the store, overwritten by the next save
                warnings.warn(
                    f"training checkpoint in {self.remote} not removed ({type(error).__name__}: {error})", stacklevel=2
                )

    # -- internals ------------------------------------------------------------------------------------------------
    @property
    def _downloaded(self) -> Path:
        return self.path.with_name(self.path.name + ".stored")

    def _clear_local(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".partial"), self._downloaded):
            path.unlink(missing_ok=True)

    def _read(self, path: Path) -> Optional[dict]:
        """The state in a local file, loaded with weights_only=True; None (the file removed, with a warning) when
        it is not a readable checkpoint."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state["step"] = int(state["step"])
            return state
        except Exception as error:  # noqa: BLE001 - truncated, corrupt or not ours: start from scratch
            warnings.warn(
                f"training checkpoint {path} unreadable ({type(error).__name__}: {error}); starting over",
                stacklevel=3,
            )
            path.unlink(missing_ok=True)
            return None

    def _fetch(self) -> Optional[dict]:
        """The stored checkpoint, downloaded beside the local file and read; None when there is none, or (removed
        from the store, with a warning) when it does not verify or cannot be read."""
        if self.remote is None:
            return None
        try:
            found = self.remote.download(self._downloaded)
        except Exception as error:  # noqa: BLE001 - truncated or replaced in the store, or the store unreachable
            warnings.warn(
                f"training checkpoint in {self.remote} unreadable ({type(error).__name__}: {error}); not resumed",
                stacklevel=3,
            )
            found = False
            self._forget_stored()
        if not found:
            return None
        state = self._read(self._downloaded)
        if state is None:
            self._forget_stored()
        return state

    def _forget_stored(self) -> None:
        self._downloaded.unlink(missing_ok=True)
        try:
            self.remote.delete()
        except Exception:  # noqa: BLE001 - overwritten by the next save anyway
            pass
