"""What a node asks of a Ray worker: `num_cpus` and `num_gpus` (fractions pack several small jobs on one GPU).

Taken, most specific first, from the sweep's `resources.<method>` (an unlearn node's method), the method's entry in
configs/resources.yaml, the sweep's `resources.<node kind>`, `resources.default`, and last the defaults in
configs/resources.yaml: one CPU, and on a cluster with GPUs the kind's `gpu_share` (a whole GPU for the three
training kinds, a quarter for every other node). Resources never enter a content key."""

from __future__ import annotations

from typing import Optional

from orchestrator.spec.resources import method_resources, resource_defaults


def resources_for(section: dict, kind: str, method: Optional[str], cluster_has_gpus: bool) -> dict[str, float]:
    defaults = resource_defaults()
    built_in = {
        "num_cpus": defaults.default.num_cpus,
        "num_gpus": defaults.gpu_share.get(kind, 0.0) if cluster_has_gpus else 0.0,
    }
    layers = [
        section.get(method) if method else None,
        method_resources(method) if method else None,
        section.get(kind),
        section.get("default"),
        built_in,
    ]
    out: dict[str, float] = {}
    for layer in layers:
        for field_name in ("num_cpus", "num_gpus"):
            if layer and layer.get(field_name) is not None:
                out.setdefault(field_name, float(layer[field_name]))
    return out
