"""What a report folder was drawn from, in `drawn_from.json` beside report.html: the sweep, a sha256 of its summary
and the test-accuracy floor asked for. A re-run of a finished sweep keeps a folder whose stamp matches, instead of
drawing every figure again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

STAMP = "drawn_from.json"
RERUN = "rerun"  # what a re-run of a finished sweep adds beside that sweep's summary (app/rerun.py)


def recorded(summary: dict) -> dict:
    """The summary as its sweep recorded it: without a re-run's note."""
    return {k: v for k, v in summary.items() if k != RERUN}


def summary_digest(summary: dict) -> str:
    """sha256 of the recorded summary, key order aside: the same for a sweep's summary and a re-run's of it."""
    return hashlib.sha256(json.dumps(recorded(summary), sort_keys=True, default=str).encode()).hexdigest()


def stamp(summary: dict, floor: Optional[float]) -> dict:
    return {"sweep_id": summary["sweep_id"], "summary_sha256": summary_digest(summary), "test_floor": floor}


def drawn_from(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None
