"""The tables printed after a run: held-out forget accuracy before and after relearning, per model and seed, and over
seeds; for a corrupted-data task space instead, each model's averages over the space (`summary_tables` picks)."""

from __future__ import annotations

from typing import Optional

from rich.table import Table

from orchestrator.report.distributional import distributional_table
from orchestrator.report.seeds import mean_of, setting_name
from orchestrator.report.verdicts import reading


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def results_table(summary: dict) -> Table:
    ks = sorted(
        {int(k) for r in summary["results"] for k in r["relearned"]}
        | {int(k) for k in (summary["retrain"] or {}).get("relearned", {})}
    )
    table = Table(title=f"{summary['sweep']}: accuracy (%) on held-out forget examples, before and after relearning")
    shared = summary.get("method_overrides", {})
    populations = bool(summary.get("distributional"))  # then the forget quality of each model's population too
    for column in _results_columns(ks, populations):
        table.add_column(column, justify="left" if column == "model" else "right")

    def row(name: str, seed, metrics: Optional[dict], relearned: dict, l2, lmc, population=None):
        metrics = metrics or {}
        quality = [_quality(population)] if populations else []
        table.add_row(
            name,
            str(seed),
            _pct(metrics.get("forget_acc")),
            _pct(metrics.get("heldout_forget_acc")),
            *[_pct(relearned.get(str(k), {}).get("heldout_forget_acc")) for k in ks],
            _pct(metrics.get("test_acc")),
            "-" if l2 is None else f"{l2:.2f}",
            "-" if not lmc else f"{lmc['loss_barrier']:.3f}",
            _pct((lmc or {}).get("error_barrier")),
            *quality,
        )

    for control in summary["seeds"]:
        original = control["original"] or {}
        row("original", control["seed"], original, original.get("relearned", {}), None, None)
        retrain = control["retrain"] or {}
        row(
            "retrain (control)",
            control["seed"],
            retrain,
            retrain.get("relearned", {}),
            retrain.get("l2_to_original"),
            retrain.get("lmc"),
            retrain.get("distributional"),
        )
    for r in summary["results"]:
        named = _setting_name(r, shared)
        row(named, r["seed"], r["unlearned"], r["relearned"], r["l2_to_original"], r["lmc"], r.get("distributional"))
    return table


def _results_columns(ks: list[int], populations: bool) -> list[str]:
    return [
        "model",
        "seed",
        "forget",
        "held-out",
        *[f"relearn k={k}" for k in ks],
        "test",
        "L2 to orig",
        "loss barrier",
        "error barrier",
        *(["forget quality (null)"] if populations else []),
    ]


def _quality(population: Optional[dict]) -> str:
    """A model's population's forget quality, the null's beside it."""
    if not population or population.get("forget_quality") is None:
        return "-"
    return f"{population['forget_quality']:.3f} ({population.get('null_forget_quality', float('nan')):.3f})"


def _mean_sd(entry: dict, name: str) -> str:
    metric = entry["metrics"].get(name)
    if metric is None:
        return "-"
    sd = "" if metric["sd"] is None else f" ± {100 * metric['sd']:.1f}"
    return f"{100 * metric['mean']:.1f}{sd}"


def _setting_name(entry: dict, shared: dict) -> str:
    method, details = setting_name(entry, shared)
    return f"{method} [dim]{details}[/dim]"


def seeds_table(summary: dict) -> Optional[Table]:
    """Every setting and control over its seeds, mean ± sd (n); None for a one-seed sweep."""
    over = summary.get("over_seeds")
    if not over or len(summary["seeds"]) < 2:
        return None
    ks = sorted(
        {
            int(name.split(".")[1][1:])
            for entry in [over["retrain"], *over["settings"]]
            for name in entry["metrics"]
            if name.startswith("relearned.")
        }
    )
    title = f"{summary['sweep']}: mean ± sd over seeds (%), held-out forget accuracy before and after relearning"
    table = Table(title=title)
    relearned = [f"relearn k={k}" for k in ks]
    for column in ["model", "n", "held-out", *relearned, "test", *(["test after k=0"] if 0 in ks else [])]:
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("L2 to orig", justify="right")
    table.add_column("reading")
    verdicts = summary.get("verdicts") or {}
    readings = verdicts.get("settings") or [None] * len(over["settings"])
    margin = verdicts.get("criteria", {}).get("test_margin", 0.0)
    shared = summary.get("method_overrides", {})
    table.add_row(*_seeds_row("original", over["original"], "original", ks))
    table.add_row(*_seeds_row("retrain (control)", over["retrain"], "retrain", ks))
    for entry, verdict in zip(over["settings"], readings):
        name = _setting_name(entry, shared)
        table.add_row(*_seeds_row(name, entry, "unlearned", ks, reading(verdict, margin)))
    return table


def _seeds_row(name: str, entry: dict, model_key: str, ks: list[int], reading: str = "") -> list[str]:
    l2 = mean_of(entry, "l2_to_original")
    return [
        name,
        str(len(entry["seeds"])),
        _mean_sd(entry, f"{model_key}.heldout_forget_acc"),
        *[_mean_sd(entry, f"relearned.k{k}.heldout_forget_acc") for k in ks],
        _mean_sd(entry, f"{model_key}.test_acc"),
        *([_mean_sd(entry, "relearned.k0.test_acc")] if 0 in ks else []),
        "-" if l2 is None else f"{l2:.2f}",
        reading,
    ]


def summary_tables(summary: dict) -> list[Table]:
    """What `run` and `report` print: the task-space table, or the results table and (several seeds) the seeds table."""
    if summary.get("task_space"):
        return [task_space_table(summary)]
    tables = (results_table(summary), seeds_table(summary), distributional_table(summary))
    return [t for t in tables if t is not None]


def _mean_se(found: Optional[dict]) -> str:
    if not found:
        return "-"
    se = "" if found["se"] is None else f" ± {100 * found['se']:.1f}"
    return f"{100 * found['mean']:.1f}{se}"


def task_space_table(summary: dict) -> Table:
    """Per model: the average over the space of utility, healed and their product (mean ± SE over seeds), then
    utility x healed averaged over each corruption's discovery rates (means over seeds)."""
    space = summary["task_space"]
    seeds = sorted({c["seed"] for c in summary["seeds"]})
    table = Table(
        title=f"{summary['sweep']}: the task space, % (average over {len(space['corruptions'])} corruptions x "
        f"{len(space['discovery_rates'])} discovery rates; mean ± SE over seeds {seeds})"
    )
    corruptions = space["corruptions"]
    for column in ["model", "cells", "utility", "healed", "utility × healed", *[f"u×h {c}" for c in corruptions]]:
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in space["models"]:
        averages, grid = space["averages"][model], space["heatmaps"][model].get("utility_x_healed", [])
        per_corruption = [[v for v in row if v is not None] for row in grid]
        table.add_row(
            model,
            str(averages["cells"]),
            *[_mean_se(averages.get(m)) for m in ("utility", "healed", "utility_x_healed")],
            *[f"{100 * sum(row) / len(row):.1f}" if row else "-" for row in per_corruption],
        )
    return table
