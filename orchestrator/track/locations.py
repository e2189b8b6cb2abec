"""Where a store's files live, and whether they outlive the process that writes them. Light: no MLflow import.

A Ray Job's driver runs in Ray's unpacked copy of the job's working directory
(`/tmp/ray/session_*/runtime_resources/working_dir_files/_ray_pkg_*`), which Ray deletes with its session. A sqlite
store, an artifact folder, a summary or a report written there by a relative path vanishes with it, and an experiment
created there keeps pointing there for later sweeps."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Optional

RAY_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for a job's entrypoint (Ray 2.x)
RAY_PACKAGE = "/runtime_resources/working_dir_files/"  # where Ray unpacks a job's working directory


def ray_job_folder() -> Optional[Path]:
    """This process's working directory when it is a Ray Job's entrypoint run in Ray's copy of the job's working
    directory (or anywhere under Ray's temporary folder); None otherwise."""
    raw = os.environ.get(RAY_JOB_ENV)
    if not raw:
        return None
    try:
        runtime_env = json.loads(raw).get("runtime_env") or {}
    except (ValueError, AttributeError):
        runtime_env = {}
    here = Path.cwd().resolve()
    return here if runtime_env.get("working_dir") or in_ray_temp(here) else None


def ray_temp_root() -> Path:
    return Path(os.environ.get("RAY_TMPDIR") or "/tmp") / "ray"


def in_ray_temp(path: Path) -> bool:
    """Whether a path is in a Ray job's unpacked package or Ray's temporary folder, both gone with Ray's session."""
    text = str(path)
    return RAY_PACKAGE in text or path == ray_temp_root() or ray_temp_root() in path.parents


def local_path(location: str) -> Optional[Path]:
    """The absolute path of a sqlite store, a file: URI or a plain path; None for a server, a database or an object
    store (their bytes live elsewhere)."""
    if location.startswith("sqlite:///"):
        path = location.removeprefix("sqlite:///").split("?")[0]
        return Path(path if path.startswith("/") else os.path.abspath(path))
    if location.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
    if "://" in location or location.split(":")[0] in ("postgresql", "mysql", "mssql", "databricks"):
        return None
    return Path(os.path.abspath(location))


def vanishes(location: str, job_folder: Optional[Path]) -> bool:
    """Whether what is written at `location` goes when this Ray Job's session ends."""
    path = local_path(location)
    if path is None:
        return False
    path = Path(os.path.abspath(path))
    inside_job = job_folder is not None and (path == job_folder or job_folder in path.parents)
    return inside_job or in_ray_temp(path)
