"""A sweep's fingerprint: the sha256 of everything its content keys follow from that a command line hands over,
read without the schema and so without torch:

- the sweep file over its `base:` files, with profiles and key=value overrides applied and interpolations resolved;
- the bytes of every file the config names (a memorization scores file decides the forget set);
- the method and selection defaults files and the source of both packages, so a handler whose version was bumped,
  or any other change of code, counts as a different sweep.

Two runs with one fingerprint plan the same DAG with the same keys. A fingerprint that differs where keys would not
(a comment edited in workloads/) costs the shortcut once, never a result: the run then plans in full, finds every
node cached and records the new fingerprint. `run` records it on the sweep's parent run, and a later run with the
same one reuses that finished sweep instead of recording another (orchestrator/track/finished.py). Computed in about
20 ms for the quickstart on a 2-core EPYC."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.spec.errors import SpecError
from orchestrator.spec.files import CONFIG_DIR, load_with_base, sweep_file
from orchestrator.spec.overrides import apply_overrides
from orchestrator.spec.tracking import TrackingSpec

VERSION = 1  # of what goes into the digest; bump it when that changes


@dataclass(frozen=True)
class Fingerprint:
    digest: str
    tracking: TrackingSpec  # the sweep file's tracking section (before --tracking-uri and MLFLOW_TRACKING_URI)
    searches: bool  # a sweep with a hyperparameter search: its trials are outside the DAG, so it is never reused


def fingerprint(config: str | Path, overrides: list[str]) -> Optional[Fingerprint]:
    """None when the sweep cannot be read this way; `load_spec` then says what is wrong with it."""
    try:
        path = sweep_file(config)
        raw = apply_overrides(load_with_base(path), list(overrides), path)
        resolved = OmegaConf.to_container(raw, resolve=True)
        tracking = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(TrackingSpec), resolved.get("tracking") or {})
        )
    except (
        SpecError,
        OmegaConfBaseException,
        yaml.YAMLError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ):
        return None
    digest = hashlib.sha256(json.dumps({"version": VERSION, "sweep": resolved}, sort_keys=True, default=str).encode())
    for file in sorted(_named_files(resolved)):
        digest.update(f"\0file {file}\0".encode() + _file_sha256(file).encode())
    digest.update(code_digest().encode())
    return Fingerprint(digest.hexdigest(), tracking, bool(resolved.get("search")))


def code_digest() -> str:
    """sha256 over the source of `orchestrator` and `workloads`, the method defaults files and the selection's
    (names and bytes)."""
    workloads = Path(find_spec("workloads").origin).parent  # found, not imported: its modules import torch
    digest = hashlib.sha256()
    for root, pattern in (
        (Path(__file__).resolve().parents[1], "*.py"),
        (workloads, "*.py"),
        (CONFIG_DIR / "methods", "*.yaml"),
        (CONFIG_DIR / "selection", "*.yaml"),
    ):
        for file in sorted(root.rglob(pattern)):
            digest.update(f"\0{file.relative_to(root)}\0".encode() + file.read_bytes())
    return digest.hexdigest()


def _named_files(value) -> set[str]:
    """Every string in the config that names an existing file (relative to the working directory, as the sweep
    reads it)."""
    if isinstance(value, dict):
        return set().union(*map(_named_files, value.values()))
    if isinstance(value, list):
        return set().union(*map(_named_files, value))
    if not isinstance(value, str) or not value:
        return set()
    try:
        return {value} if Path(value).is_file() else set()
    except (OSError, ValueError):  # not a path at all
        return set()


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
