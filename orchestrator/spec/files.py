"""YAML files that may start from another: `base: other.yaml` (relative to the file) loads that file first and
merges this one over it. Sweep files and method defaults files both use it."""
from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from orchestrator.spec.errors import SpecError

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "configs"


def load_with_base(path: Path, what: str = "sweep file", seen: tuple[Path, ...] = ()) -> DictConfig:
    if path.resolve() in seen:
        raise SpecError(f"{path}: base: files include each other")
    if not path.is_file():
        raise SpecError(f"{path}: no such {what}")
    try:
        raw = OmegaConf.load(path)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    base = raw.pop("base", None)
    if base is None:
        return raw
    return OmegaConf.merge(load_with_base(path.parent / str(base), what, seen + (path.resolve(),)), raw)
