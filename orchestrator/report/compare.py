"""`compare A B`: what differs between two sweeps' configs (their parent runs' params) and, per model, how each
number of the results table moved from A to B (means over seeds).

Models are matched by what they are: the controls by role, a method setting by its method, hparams and start; a
setting left unmatched on both sides is paired with the other side's only leftover setting of the same method (one
hparam changed between the sweeps), and anything else is listed as only in A or only in B."""

from __future__ import annotations

from typing import Optional

from rich.table import Table

from orchestrator.report.rows import Model, ks, models


def config_differences(a: dict[str, str], b: dict[str, str]) -> list[tuple[str, Optional[str], Optional[str]]]:
    """(param, value in A, value in B) for every param that differs; sweep-local ones (names, locations) too."""
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def match(a: list[Model], b: list[Model]) -> list[tuple[Optional[Model], Optional[Model]]]:
    ident = lambda m: m.role if m.role != "unlearned" else m.setting
    by_b = {ident(m): m for m in b}
    pairs = [(m, by_b.pop(ident(m), None)) for m in a]
    left_b = list(by_b.values())
    for i, (model, other) in enumerate(pairs):
        if other is None:
            same = [m for m in left_b if m.method == model.method]
            if len(same) == 1 and sum(1 for x, y in pairs if y is None and x.method == model.method) == 1:
                pairs[i] = (model, same[0])
                left_b.remove(same[0])
    return pairs + [(None, m) for m in left_b]


def numbers(grid: list[int]) -> list[tuple[str, str, bool]]:
    """(column, number, as percent) compared per model."""
    return (
        [("test", "unlearned.test_acc", True), ("held-out forget", "unlearned.heldout_forget_acc", True)]
        + [(f"after relearn k={k}", f"relearned.k{k}.heldout_forget_acc", True) for k in grid]
        + [("L2 to orig", "l2_to_original", False), ("loss barrier", "lmc.loss_barrier", False)]
    )


def _delta(a: Optional[Model], b: Optional[Model], name: str, percent: bool) -> str:
    x, y = (None if a is None else a.mean(name)), (None if b is None else b.mean(name))
    scale, digits = (100, 1) if percent else (1, 3)
    show = lambda v: "-" if v is None else f"{scale * v:.{digits}f}"
    if x is None or y is None:
        return f"{show(x)} → {show(y)}"
    return f"{show(x)} → {show(y)} ({scale * (y - x):+.{digits}f})"


def compare_tables(a: dict, b: dict, a_config: Optional[dict], b_config: Optional[dict]) -> list[Table | str]:
    """The config differences (when both configs are known; a line when there are none) and the metric deltas."""
    tables = []
    label_a, label_b = f"A {a.get('sweep_id', '?')}", f"B {b.get('sweep_id', '?')}"
    differences = None if a_config is None or b_config is None else config_differences(a_config, b_config)
    if differences:
        config = Table(title="config: what differs")
        for column in ("param", label_a, label_b):
            config.add_column(column)
        for key, x, y in differences:
            config.add_row(key, "-" if x is None else x, "-" if y is None else y)
        tables.append(config)
    elif differences is not None:
        tables.append(f"config: the same in both sweeps ({len(a_config)} params)")
    grid = sorted(set(ks(a)) & set(ks(b)))
    shown = numbers(grid)
    deltas = Table(title="metrics, A → B (Δ), accuracies in %, means over seeds")
    for column in ["model", *[c[0] for c in shown]]:
        deltas.add_column(column, justify="left" if column == "model" else "right")
    for x, y in match(models(a), models(b)):
        name = (x or y).name if x is None or y is None or x.name == y.name else f"{x.name} → {y.name}"
        where = " [dim](only in A)[/]" if y is None else " [dim](only in B)[/]" if x is None else ""
        deltas.add_row(name + where, *[_delta(x, y, number, percent) for _, number, percent in shown])
    tables.append(deltas)
    return tables
