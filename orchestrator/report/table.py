"""The results table printed after a run: held-out forget accuracy before and after relearning, per model and seed."""
from __future__ import annotations

from typing import Optional

from rich.table import Table

from orchestrator.spec import changed_hparams


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def results_table(summary: dict) -> Table:
    ks = sorted({int(k) for r in summary["results"] for k in r["relearned"]} | {int(k) for k in (summary["retrain"] or {}).get("relearned", {})})
    table = Table(title=f"{summary['sweep']}: accuracy (%) on held-out forget examples, before and after relearning")
    for column in ["model", "seed", "forget", "held-out", *[f"relearn k={k}" for k in ks], "test", "L2 to orig", "LMC barrier"]:
        table.add_column(column, justify="left" if column == "model" else "right")

    def row(name: str, seed, metrics: Optional[dict], relearned: dict, l2, lmc):
        metrics = metrics or {}
        table.add_row(name, str(seed), _pct(metrics.get("forget_acc")), _pct(metrics.get("heldout_forget_acc")),
                      *[_pct(relearned.get(str(k), {}).get("heldout_forget_acc")) for k in ks], _pct(metrics.get("test_acc")),
                      "-" if l2 is None else f"{l2:.2f}", "-" if not lmc else f"{lmc['loss_barrier']:.3f}")

    for control in summary["seeds"]:
        original = control["original"] or {}
        row("original", control["seed"], original, original.get("relearned", {}), None, None)
        retrain = control["retrain"] or {}
        row("retrain (control)", control["seed"], retrain, retrain.get("relearned", {}), retrain.get("l2_to_original"), retrain.get("lmc"))
    for r in summary["results"]:
        after, start = "", r.get("start_from")
        while start:
            after += f" after {start['method']} {changed_hparams(start['method'], start['hparams'])}".rstrip()
            start = start["start_from"]
        row(f"{r['method']} [dim]{changed_hparams(r['method'], r['hparams'])}{after}[/dim]", r["seed"], r["unlearned"],
            r["relearned"], r["l2_to_original"], r["lmc"])
    return table
