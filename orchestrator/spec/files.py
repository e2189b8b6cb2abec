"""YAML files that may start from another: `base: other.yaml` (relative to the file) loads that file first and
merges this one over it. Sweep files and method defaults files both use it."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from orchestrator.spec.errors import SpecError


def _config_dir() -> Path:
    """The configs shipped inside an installed package (setup.py copies configs/ to orchestrator/configs), else the
    repository's configs/ beside the source tree (a checkout or an editable install, which edits them in place)."""
    package = Path(__file__).resolve().parent.parent
    shipped = package / "configs"
    return shipped if shipped.is_dir() else package.parent / "configs"


CONFIG_DIR = _config_dir()


def sweep_file(name: str | Path) -> Path:
    """A sweep file as the command line names it: a path, or a sweep shipped with the package, by its name
    (`quickstart`) or its path in the repository (`configs/sweeps/quickstart.yaml`), so an installed package runs its
    own sweeps from any folder."""
    path = Path(name)
    if path.exists() or path.is_absolute():
        return path
    stem = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    shipped = CONFIG_DIR / "sweeps" / stem
    return (
        shipped
        if shipped.is_file() and (len(path.parts) == 1 or path.parent.parts[-2:] == ("configs", "sweeps"))
        else path
    )


def load_with_base(path: Path, what: str = "sweep file", seen: tuple[Path, ...] = ()) -> DictConfig:
    if path.resolve() in seen:
        raise SpecError(f"{path}: base: files include each other")
    if not path.is_file():
        raise SpecError(f"{path}: no such {what}")
    try:
        shape = yaml.compose(path.read_text())  # the document's top node, before OmegaConf reads it as whatever it can
        raw = OmegaConf.load(path)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if shape is None:
        raise SpecError(f"{path}: the {what} is empty")
    if not isinstance(shape, yaml.MappingNode):
        kind = "list" if isinstance(shape, yaml.SequenceNode) else "single value"
        raise SpecError(f"{path}: not a mapping of keys to values: the {what} holds a {kind}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    return OmegaConf.merge(load_with_base(path.parent / str(base), what, seen + (path.resolve(),)), raw)
