"""What a report folder was drawn from, in `drawn_from.json` beside report.html: the sweep, a sha256 of its summary
and the test-accuracy floor asked for. A re-run of a finished sweep keeps a folder whose stamp matches, instead of
drawing every figure again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

STAMP = "drawn_from.json"


def stamp(summary: dict, floor: Optional[float]) -> dict:
    digest = hashlib.sha256(json.dumps(summary, sort_keys=True, default=str).encode()).hexdigest()
    return {"sweep_id": summary["sweep_id"], "summary_sha256": digest, "test_floor": floor}


def drawn_from(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None
