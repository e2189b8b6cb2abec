"""A method's defaults file, configs/methods/<name>.yaml (over the files it starts from with `base:`), and a
setting named by what differs from it. YAML only, no torch: the report names settings with it, and a sweep re-run
that finds its twin finished prints the report without importing torch (orchestrator/app/rerun.py)."""

from __future__ import annotations

import copy
import functools
from typing import Optional

from omegaconf import OmegaConf

from orchestrator.spec.errors import SpecError
from orchestrator.spec.files import CONFIG_DIR, load_with_base


@functools.cache
def _defaults_file(name: str) -> dict:
    path = CONFIG_DIR / "methods" / f"{name}.yaml"
    if not path.exists():
        raise SpecError(f"method {name!r} has no defaults file {path}")
    return OmegaConf.to_container(load_with_base(path, "method defaults file"), resolve=True)


def method_defaults(name: str) -> dict:
    """The method's default hparams: its defaults file over the files it starts from (a copy: callers may change it)."""
    return copy.deepcopy(_defaults_file(name))


def changed_hparams(method: str, hparams: dict, shared: Optional[dict] = None) -> str:
    """The hparams that differ from the method's defaults file and from the sweep's `method_overrides` (`shared`,
    set for every method alike, so naming it on each one tells nothing), as 'k=v ...'."""
    defaults = method_defaults(method) | (shared or {})
    return " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(hparams.items()) if defaults.get(k) != v
    )
