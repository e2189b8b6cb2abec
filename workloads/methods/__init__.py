"""Importing this package registers every method module in it."""

import importlib
import pkgutil

from workloads.methods.base import (
    METHODS,
    MethodConfig,
    OptimizerConfig,
    UnlearnContext,
    UnlearningMethod,
    frozen_copy,
    register_method,
    unlearn,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "METHODS",
    "MethodConfig",
    "OptimizerConfig",
    "UnlearnContext",
    "UnlearningMethod",
    "frozen_copy",
    "register_method",
    "unlearn",
]
