"""This machine's cache folder, outside the record: the training labels a plan reads (plan/labels.py), the measured
step costs of the plan's estimate (plan/cost.py) and the training checkpoints of nodes in progress
(execute/worker.py). `UNLEARN_SWEEP_CACHE` moves it (default ~/.cache/unlearn-sweep). Nothing in it is a result:
deleting it costs time, never work."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "UNLEARN_SWEEP_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "unlearn-sweep")
