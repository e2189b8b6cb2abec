"""A sweep file (and the file it starts from with `base:`), then named profiles and key=value overrides in
command-line order, typed against the schema and validated: the `SweepSpec` every later stage reads, with its method
settings (each grid point typed by its method's config class once, here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.files import load_with_base, sweep_file
from orchestrator.spec.methods import MethodSetting
from orchestrator.spec.overrides import apply_overrides
from orchestrator.spec.schema import SweepSpec
from orchestrator.spec.validate import validate
from workloads.config import omegaconf_message


@dataclass(frozen=True)
class LoadedSweep:
    path: Path
    spec: SweepSpec
    settings: tuple[MethodSetting, ...]  # every method's grid, expanded and typed, in the order of `methods`


def load_sweep(path: str | Path, overrides: list[str] = ()) -> LoadedSweep:
    path = sweep_file(path)
    raw = load_with_base(path)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SweepSpec), raw)
        merged = apply_overrides(merged, overrides, path)
    except OmegaConfBaseException as error:
        raise SpecError(omegaconf_message(error, path.name)) from None
    spec = checked(SweepSpec, merged, path.name)
    return LoadedSweep(path, spec, tuple(validate(spec, path.name)))


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    return load_sweep(path, overrides).spec
