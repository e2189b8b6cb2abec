"""The `search:` section: a hyperparameter search over one method's hparams (run by orchestrator/execute/search.py).
What each search metric means lives here, since validation needs its name and direction: `forget_gap` is
|forget accuracy - the retrained control's| (minimised), `heldout_forget_gap` the same on the held-out forget
examples, `tow` is maximised."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.methods import check_method_name, method_defaults
from orchestrator.spec.schema import SearchSpec
from workloads.methods import METHODS

DOMAINS = {"loguniform": 2, "uniform": 2, "randint": 2, "choice": None}
ALGORITHMS = ("random", "optuna")
SEARCH_METRICS: dict[str, tuple[str, Callable[[dict, dict], float]]] = {
    "forget_gap": ("min", lambda trial, control: abs(trial["forget_acc"] - control["forget_acc"])),
    "heldout_forget_gap": (
        "min",
        lambda trial, control: abs(trial["heldout_forget_acc"] - control["heldout_forget_acc"]),
    ),
    "tow": ("max", lambda trial, control: trial["tow"]),
}


def check_search(search: SearchSpec, where: str) -> None:
    check_method_name(search.name, where)
    fields = {f.name for f in dataclasses.fields(METHODS.get(search.name).Config)}
    if not search.space:
        raise SpecError(f"{where}.space: empty; name at least one hparam of {search.name} and its range")
    for name, domain in search.space.items():
        if name not in fields:
            raise SpecError(
                f"{where}.space.{name}: {search.name} has no hparam {name!r}; it has {', '.join(sorted(fields))}"
            )
        if not isinstance(domain, dict) or len(domain) != 1 or next(iter(domain)) not in DOMAINS:
            raise SpecError(
                f"{where}.space.{name}: expected one of {{{': [..]}, {'.join(DOMAINS)}: [..]}}, got {domain!r}"
            )
        kind, args = next(iter(domain.items()))
        if not isinstance(args, list) or (DOMAINS[kind] and len(args) != DOMAINS[kind]) or not args:
            raise SpecError(
                f"{where}.space.{name}.{kind}: expected a list of {DOMAINS[kind] or 'choices'}, got {args!r}"
            )
        if DOMAINS[kind]:
            _check_range(kind, args, f"{where}.space.{name}.{kind}")
    checked(METHODS.get(search.name).Config, {**method_defaults(search.name), **search.hparams}, f"{where}.hparams")
    if search.algorithm not in ALGORITHMS:
        raise SpecError(f"{where}.algorithm: must be one of {', '.join(ALGORITHMS)}, got {search.algorithm!r}")
    if search.metric not in SEARCH_METRICS:
        raise SpecError(f"{where}.metric: must be one of {', '.join(SEARCH_METRICS)}, got {search.metric!r}")
    if search.num_samples < 1 or search.max_concurrent < 1:
        raise SpecError(f"{where}: num_samples and max_concurrent must be >= 1")


def _check_range(kind: str, bounds: list, where: str) -> None:
    """[low, high]: numbers, low below high, and both above zero on a log scale (Tune would fail mid-sweep)."""
    low, high = bounds
    numbers = all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
    if not numbers or low >= high:
        raise SpecError(f"{where}: expected [low, high] with finite numbers, low < high; got {bounds!r}")
    if kind == "loguniform" and low <= 0:
        raise SpecError(f"{where}: a log-uniform range needs bounds above 0, got {bounds!r}")
    if kind == "randint" and not all(isinstance(b, int) for b in bounds):
        raise SpecError(f"{where}: expected whole numbers, got {bounds!r}")
