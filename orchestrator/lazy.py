"""Package namespaces whose names are imported from their modules when first used (PEP 562): importing one light
module of a stage then does not import the whole stage (torch, MLflow, SciPy), which is what lets a re-run whose
identical sweep already finished answer in well under a second of imports."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], object], list[str]]:
    """(`__getattr__`, `__all__`) for `package`, from {module: the names it exports}."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(where[name]), name)

    return __getattr__, sorted(where)
