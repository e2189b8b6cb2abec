"""Which code this is: the installed package's version and, from a git checkout, its commit (MLflow's source tags
and `unlearn-sweep --version`). No import of the stages, so `--version` answers at once."""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def package_version() -> str:
    try:
        return version("unlearn-sweep")
    except PackageNotFoundError:
        return "unknown (not installed)"


@functools.lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of the checkout this code runs from; None for an installed package or without git."""
    if not (PACKAGE_ROOT / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
