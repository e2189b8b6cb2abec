"""`side-by-side A B [C ...]`: several sweeps' results tables in one, model by model, each sweep labelled by its forget
set (its criterion, from the summary's `forget` section) or, failing that, its sweep id. Made for sweeps that differ
in one thing, e.g. one profile per forget-set criterion sharing the originals through the store: every model the
sweeps have in common gets one row per sweep, in the order given, so the criteria of one method sit together.
Accuracies in %, mean ± sd over seeds; `recovery` is relearned minus unlearned held-out forget accuracy, in points.
Reads summaries alone."""

from __future__ import annotations

from typing import Optional

from rich.table import Table

from orchestrator.report.rows import Model, ks, models


def label(summary: dict) -> str:
    """What sets a sweep apart here: its forget criterion (and, for worst_case, how much of its random start the
    selection kept), else its sweep id."""
    forget = summary.get("forget") or {}
    if "criterion" not in forget:
        return str(summary.get("sweep_id", "?"))
    kept = [s["start_overlap"] for s in forget.get("selections", []) if s.get("start_overlap") is not None]
    return forget["criterion"] + (f" (kept {100 * sum(kept) / len(kept):.0f}% of its start)" if kept else "")


def columns(grid: list[int]) -> list[tuple[str, str, bool, bool]]:
    """(heading, number, as percent, with sd) per column."""
    out = [("held-out forget", "unlearned.heldout_forget_acc", True, True)]
    for k in grid:
        out += [(f"after relearn k={k}", f"relearned.k{k}.heldout_forget_acc", True, True)]
        out += [(f"recovery k={k}", f"recovery.k{k}", True, False)]
    return out + [
        ("test", "unlearned.test_acc", True, True),
        ("L2 to orig", "l2_to_original", False, False),
        ("loss barrier", "lmc.loss_barrier", False, False),
    ]


def cell(model: Optional[Model], number: str, percent: bool, with_sd: bool) -> str:
    mean = None if model is None else model.mean(number)
    if mean is None:
        return "-"
    scale, digits = (100, 1) if percent else (1, 2)
    sd = model.sd(number) if with_sd else None
    return f"{scale * mean:.{digits}f}" + ("" if sd is None else f" ± {scale * sd:.{digits}f}")


def identity(model: Model) -> str:
    return model.role if model.role != "unlearned" else model.setting


def side_by_side_table(summaries: list[dict]) -> Table:
    """One row per model and sweep: the models of the first sweep first, then any the others add."""
    per_sweep = [{identity(m): m for m in models(s)} for s in summaries]
    order: dict[str, str] = {}
    for found in per_sweep:
        for ident, model in found.items():
            order.setdefault(ident, model.name)
    grid = sorted(set.intersection(*(set(ks(s)) for s in summaries)))
    shown = columns(grid)
    table = Table(title="side by side: accuracies in %, mean ± sd over seeds")
    for heading in ["model", "sweep", *[c[0] for c in shown]]:
        table.add_column(heading, justify="left" if heading in ("model", "sweep") else "right")
    labels = [label(s) for s in summaries]
    for ident, name in order.items():
        for i, found in enumerate(per_sweep):
            model = found.get(ident)
            table.add_row(name if i == 0 else "", labels[i], *[cell(model, *c[1:]) for c in shown])
        table.add_section()
    return table
