"""What a node asks of a Ray worker: `num_cpus` and `num_gpus` (fractions pack several small jobs on one GPU).

Taken, most specific first, from the sweep's `resources.<method>` (an unlearn node's method), the method's defaults
file (`resources:` in configs/methods/<name>.yaml), the sweep's `resources.<node kind>`, `resources.default`, and
last these built-in values: one CPU, and on a cluster with GPUs a whole GPU for the three training kinds and a
quarter of one for every other node. Resources never enter a content key."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from orchestrator.spec import SpecError, checked, method_resources

# Two shapes by default, not one per kind: a worker actor is sized once, and every distinct shape in a phase of the
# sweep means retiring idle actors and starting new ones (seconds each: a process importing torch, loading data).
GPU_SHARE = {"memorization": 1.0, "train_original": 1.0, "train_retrain": 1.0, "unlearn": 0.25, "relearn": 0.25,
             "interpolate": 0.25, "evaluate": 0.25, "distance": 0.25}


@dataclass
class Resources:
    num_cpus: Optional[float] = None
    num_gpus: Optional[float] = None


def check_resources(section: dict, kinds, methods, where: str) -> None:
    for name, values in section.items():
        if name != "default" and name not in kinds and name not in methods:
            raise SpecError(f"{where}: resources.{name}: not a node kind ({', '.join(kinds)}), a method or 'default'")
        parsed = checked(Resources, values, f"{where}: resources.{name}")
        for field_name in ("num_cpus", "num_gpus"):
            value = getattr(parsed, field_name)
            if value is not None and value < 0:
                raise SpecError(f"{where}: resources.{name}.{field_name}: must be >= 0, got {value}")


def resources_for(section: dict, kind: str, method: Optional[str], cluster_has_gpus: bool) -> dict[str, float]:
    layers = [section.get(method) if method else None, method_resources(method) if method else None,
              section.get(kind), section.get("default"),
              {"num_cpus": 1.0, "num_gpus": GPU_SHARE[kind] if cluster_has_gpus else 0.0}]
    out: dict[str, float] = {}
    for layer in layers:
        for field_name in ("num_cpus", "num_gpus"):
            if layer and layer.get(field_name) is not None:
                out.setdefault(field_name, float(layer[field_name]))
    return out
