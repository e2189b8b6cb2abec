"""The one rule for "this run holds the result of that key", and the names of the files it reads. Every lookup
follows it: `Artifacts.find` through MLflow, and the check of a finished sweep (finished.py), which reads a sqlite
store's tables and artifact folders directly. No MLflow or torch import, so that check stays light.

- The candidates are the key's runs (tag `node_key`) that ended FINISHED and are not deleted, newest first; only the
  first LOOKUP_DEPTH are looked at.
- A candidate holds the result when its manifest (written last) names only files that are there with their
  recorded sizes, and `result.json` matches its recorded sha256. The checkpoint is hashed only when it is loaded.
- The first candidate that holds the result is the result; none: the key is not cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Optional, TypeVar

MANIFEST = "manifest.json"  # name -> {"sha256", "size"} of every other file; written last
RESULT = "result.json"  # the node's JSON result
CHECKPOINT = "model.pt"  # a model's state_dict
TENSORS = "tensors.pt"  # extra tensors (memorization scores)
LOOKUP_DEPTH = 5  # candidates a lookup considers, newest first
FINISHED = "attributes.status = 'FINISHED'"  # the candidates' status, as an MLflow filter

Run = TypeVar("Run")


def manifest_entries(text: str | bytes) -> dict[str, dict]:
    """A manifest as name -> {"sha256", "size"}; manifests written before sizes were recorded give size None."""
    entries = json.loads(text)
    return {name: e if isinstance(e, dict) else {"sha256": e, "size": None} for name, e in entries.items()}


def files_complete(manifest: dict[str, dict], listing: dict[str, int]) -> bool:
    """Every file the manifest names is in the listing (name -> size) with its recorded size."""
    return all(name in listing and entry["size"] in (None, listing[name]) for name, entry in manifest.items())


def verifies(manifest: dict[str, dict], name: str, data: bytes) -> bool:
    """The bytes of `name` match the sha256 its manifest recorded."""
    return hashlib.sha256(data).hexdigest() == manifest[name]["sha256"]


def first_result(candidates: Iterable[Run], holds: Callable[[Run], bool]) -> Optional[Run]:
    """The result among a key's candidates (newest first): the first of the first LOOKUP_DEPTH that holds it."""
    for run in list(candidates)[:LOOKUP_DEPTH]:
        if holds(run):
            return run
    return None
