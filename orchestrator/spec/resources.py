"""The `resources:` section of a sweep (num_cpus / num_gpus per node kind, per method, or `default`) and the
defaults in configs/resources.yaml. Checked here; applied by the Ray executor (orchestrator/execute/resources.py)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from omegaconf import OmegaConf

from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.files import CONFIG_DIR, load_with_base
from workloads.methods import METHODS
from workloads.nodes import NODE_KINDS


@dataclass
class Resources:
    num_cpus: Optional[float] = None
    num_gpus: Optional[float] = None


@dataclass
class ResourceDefaults:
    default: Resources
    gpu_share: dict[str, float]  # node kind -> share of a GPU on a cluster that has GPUs
    methods: dict[str, Resources]


@functools.cache
def resource_defaults() -> ResourceDefaults:
    path = CONFIG_DIR / "resources.yaml"
    defaults = checked(ResourceDefaults, load_with_base(path, "resources file"), path.name)
    unknown = [k for k in defaults.gpu_share if k not in NODE_KINDS] + [m for m in defaults.methods if m not in METHODS]
    if unknown:
        raise SpecError(f"{path}: {unknown[0]}: not a node kind or method")
    return defaults


def method_resources(name: str) -> Optional[dict]:
    """What the method's unlearn nodes ask of a worker by default (None: nothing beyond the kind's)."""
    found = resource_defaults().methods.get(name)
    return None if found is None else OmegaConf.to_container(OmegaConf.structured(found))


def check_resources(section: dict, where: str) -> None:
    kinds, methods = NODE_KINDS.names(), METHODS.names()
    for name, values in section.items():
        if name != "default" and name not in kinds and name not in methods:
            raise SpecError(f"{where}: resources.{name}: not a node kind ({', '.join(kinds)}), a method or 'default'")
        parsed = checked(Resources, values, f"{where}: resources.{name}")
        for field_name in ("num_cpus", "num_gpus"):
            value = getattr(parsed, field_name)
            if value is not None and value < 0:
                raise SpecError(f"{where}: resources.{name}.{field_name}: must be >= 0, got {value}")
