"""Unlearning methods as a sweep names them: defaults from configs/methods/<name>.yaml (which may start from another
file with `base:`; `_unlearning.yaml` holds the optimiser settings every method shares), the sweep's hparams and
grid over them, and chains (`start_from`, an initial safeguard) -> fully resolved `MethodSetting`s."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf

from orchestrator.spec.defaults import changed_hparams, method_defaults
from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.schema import MethodSpec
from workloads.config import plain
from workloads.methods import METHODS


@dataclass(frozen=True)
class MethodSetting:
    """One point of a method's grid, fully resolved and typed by the method's own config class (once, when the sweep
    is loaded: the DAG builds unlearn nodes with it, the cost estimate reads it, the method runs with it), and the
    setting it starts from (None: the original)."""

    name: str
    config: Any  # the method's Config dataclass
    start: Optional[MethodSetting] = None
    shared: dict = field(default_factory=dict, compare=False)  # the sweep's method_overrides, left out of the label

    @property
    def hparams(self) -> dict:
        """The hparams as plain data (summary.json, labels, MLflow params)."""
        return plain(self.config)

    def as_dict(self) -> dict:
        """For summary.json: the method, its hparams and, for a chain, what it started from."""
        start = None if self.start is None else self.start.as_dict()
        return {"method": self.name, "hparams": self.hparams, "start_from": start}

    @property
    def label(self) -> str:
        own = f"{self.name} {changed_hparams(self.name, self.hparams, self.shared)}".strip()
        return own if self.start is None else f"{own} after {self.start.label}"

    @property
    def slot(self) -> str:
        """Its place in the sweep regardless of hyperparameters (chains keep their start's name)."""
        return self.name if self.start is None else f"{self.name} after {self.start.slot}"

    @property
    def is_oracle(self) -> bool:
        """The method is the retrained control every sweep builds anyway."""
        return METHODS.get(self.name).is_oracle


def check_method_name(name: str, where: str) -> None:
    if name not in METHODS:
        raise SpecError(f"{where}.name: unknown unlearning method {name!r}; known: {', '.join(METHODS.names())}")


def expand_method(spec: MethodSpec, where: str, overrides: Optional[dict] = None) -> list[MethodSetting]:
    """One MethodSetting per point of the method's grid (times the points of its start_from's grid)."""
    check_method_name(spec.name, where)
    method = METHODS.get(spec.name)
    starts: list[Optional[MethodSetting]] = [None]
    if spec.start_from is not None:
        start = checked(MethodSpec, spec.start_from, f"{where}.start_from")
        starts = expand_method(start, f"{where}.start_from", overrides)
    elif method.requires_start_model:
        raise SpecError(
            f"{where}: {spec.name} needs an initial safeguard model to start from; "
            f"add start_from: {{name: circuit_breakers}} (or another method)"
        )
    for name, values in spec.grid.items():
        if not values:
            raise SpecError(f"{where}.grid.{name}: the grid lists no value")
    points = [dict(zip(spec.grid, values)) for values in itertools.product(*spec.grid.values())] or [{}]
    fields = {f.name for f in dataclasses.fields(method.Config)}
    forced = {k: v for k, v in (overrides or {}).items() if k in fields}
    settings = []
    for point in points:
        merged = OmegaConf.merge(method_defaults(spec.name), spec.hparams, point, forced)
        config = checked(method.Config, merged, f"{where}.hparams")
        # Every method has them; at zero a method trains nothing or its streams never yield a batch.
        for name in ("epochs", "batch_size", "lr"):
            if getattr(config, name) <= 0:
                raise SpecError(f"{where}.hparams.{name}: must be positive, got {getattr(config, name)}")
        settings.extend(MethodSetting(spec.name, config, start, dict(overrides or {})) for start in starts)
    return settings
