"""The study's figures, drawn from a summary.json alone (nothing recomputed), each saved as PNG and SVG:

- `relearning_curves`: held-out forget accuracy against relearning steps, per method, one panel per k;
- `recovery_vs_k`: how much held-out forget accuracy relearning brings back, against k;
- `forget_vs_test`: held-out forget accuracy after relearning against the model's test accuracy (the study's scatter);
- `lmc`: test and forget accuracy along the linear path from the original (t=0) to each model (t=1);
- `weightspace_vs_recovery`: L2 to the original and the loss barrier against recovery, Spearman's rho in each title;
- `epsilon_distribution` (a sweep with populations): each population's per-example epsilon against the retrained
  one, the null dashed (distributional.py).

A corrupted-data task space gets its heatmaps instead (heatmaps.py: utility x healed, healed and utility over
regularity x discovery rate): its models are per cell, too many series for the figures above.

The retrained control is drawn dashed and the original dotted wherever they appear. With several seeds each point
is the mean over seeds with the sd as an error bar. Figures are plain `matplotlib.figure.Figure`s on the Agg canvas
(no pyplot, no display, no global state); every plotted series carries its model's name as its label."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.report.distributional import epsilon_figure
from orchestrator.report.heatmaps import task_space_heatmap
from orchestrator.report.rows import Model, mean_curve, models
from orchestrator.report.rows import ks as sweep_ks

DPI = 100
WIDTH = 11.0  # inches: 1100 px at DPI
PANEL_HEIGHT = 3.6
STYLE = {"original": {"linestyle": ":", "color": "0.45"}, "retrain": {"linestyle": "--", "color": "black"}}
MARKERS = {"original": "^", "retrain": "s", "unlearned": "o"}


def _style(model: Model, index: int) -> dict:
    return dict(STYLE.get(model.role, {"linestyle": "-", "color": f"C{index % 10}"}))


def _figure(rows: int, cols: int, title: str) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT * rows + 1.4), dpi=DPI, layout="constrained")  # + title and legend
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.suptitle(title)
    return fig, [ax for row in axes for ax in row]


def _legend(fig: Figure, axes: list) -> None:
    """One legend for the figure, below the panels: every label once."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(
            list(seen.values()), list(seen), loc="outside lower center", ncols=min(2, len(seen)), fontsize="small"
        )


def _point(ax, model: Model, index: int, x: str, y: str, errors: bool) -> None:
    """One model as a point at the means, with sd error bars on both axes when it has several seeds."""
    xs, ys = model.mean(x), model.mean(y)
    if xs is None or ys is None:
        return
    style = _style(model, index)
    ax.errorbar(
        [xs],
        [ys],
        xerr=[model.sd(x) or 0.0] if errors else None,
        yerr=[model.sd(y) or 0.0] if errors else None,
        marker=MARKERS[model.role],
        color=style["color"],
        linestyle="none",
        capsize=3,
        label=model.name,
    )


def relearning_curves(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    if not grid:
        return None
    fig, axes = _figure(1, len(grid), f"{summary['sweep']}: held-out forget accuracy while relearning")
    for ax, k in zip(axes, grid):
        for i, model in enumerate(shown):
            curves = [r["relearned"][str(k)]["curve"] for r in model.rows if "curve" in r["relearned"].get(str(k), {})]
            if curves:
                steps, mean, sd = mean_curve(curves)
                ax.errorbar(
                    steps, mean, yerr=sd if len(curves) > 1 else None, capsize=2, label=model.name, **_style(model, i)
                )
            elif model.role != "unlearned" and model.mean(f"relearned.k{k}.heldout_forget_acc") is not None:
                # A summary written before controls kept their curves: the control's reported value as a level.
                ax.axhline(model.mean(f"relearned.k{k}.heldout_forget_acc"), label=model.name, **_style(model, i))
        ax.set(
            title=f"relearning with k={k} forget examples", xlabel="relearning step", ylabel="held-out forget accuracy"
        )
    _legend(fig, axes)
    return fig


def recovery_vs_k(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    if not grid:
        return None
    fig, axes = _figure(1, 1, f"{summary['sweep']}: held-out forget accuracy brought back by relearning")
    ax = axes[0]
    for i, model in enumerate(shown):
        points = [(k, model.mean(f"recovery.k{k}"), model.sd(f"recovery.k{k}")) for k in grid]
        points = [p for p in points if p[1] is not None]
        if points:
            ax.errorbar(
                [p[0] for p in points],
                [p[1] for p in points],
                yerr=[p[2] or 0.0 for p in points],
                marker=MARKERS[model.role],
                capsize=3,
                label=model.name,
                **_style(model, i),
            )
    ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
    ax.set(xlabel="k (forget examples given to the attacker)", ylabel="recovery (relearned − unlearned held-out acc.)")
    _legend(fig, axes)
    return fig


def forget_vs_test(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    if not grid:
        return None
    errors = len(summary.get("seeds") or []) > 1
    fig, axes = _figure(1, len(grid), f"{summary['sweep']}: what relearning brings back against what the model keeps")
    for ax, k in zip(axes, grid):
        for i, model in enumerate(shown):
            _point(ax, model, i, "unlearned.test_acc", f"relearned.k{k}.heldout_forget_acc", errors)
        ax.set(title=f"k={k}", xlabel="test accuracy of the model", ylabel="held-out forget accuracy after relearning")
    _legend(fig, axes)
    return fig


def lmc(summary: dict) -> Optional[Figure]:
    shown = models(summary)
    if not any(r.get("lmc") for m in shown for r in m.rows):
        return None
    fig, axes = _figure(1, 2, f"{summary['sweep']}: linear path from the original (t=0) to each model (t=1)")
    for ax, split in zip(axes, ("test_acc", "forget_acc")):
        for i, model in enumerate(shown):
            curves = [list(zip(r["lmc"]["t"], r["lmc"][split])) for r in model.rows if r.get("lmc")]
            if not curves:  # the original: its path is a point
                continue
            t, mean, sd = mean_curve(curves)
            ax.errorbar(t, mean, yerr=sd if len(curves) > 1 else None, capsize=2, label=model.name, **_style(model, i))
        ax.set(title=split.replace("_acc", " accuracy"), xlabel="t", ylabel="accuracy")
    _legend(fig, axes)
    return fig


def weightspace_vs_recovery(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    measures = (("l2_to_original", "L2 distance to the original"), ("loss_barrier", "loss barrier (test)"))
    if not grid:
        return None
    errors = len(summary.get("seeds") or []) > 1
    fig, axes = _figure(
        len(measures), len(grid), f"{summary['sweep']}: weight space against recovery (ρ across methods)"
    )
    for row, (measure, xlabel) in enumerate(measures):
        name = measure if measure == "l2_to_original" else f"lmc.{measure}"
        for ax, k in zip(axes[row * len(grid) : (row + 1) * len(grid)], grid):
            for i, model in enumerate(shown):
                _point(ax, model, i, name, f"recovery.k{k}", errors)
            found = (summary.get("correlations") or {}).get(f"{measure}_vs_recovery_k{k}") or {}
            rho = "n/a" if found.get("spearman") is None else f"{found['spearman']:.2f}"
            ax.set(title=f"k={k}: Spearman ρ = {rho} (n={found.get('n', 0)})", xlabel=xlabel, ylabel="recovery")
    _legend(fig, axes)
    return fig


FIGURES: dict[str, Callable[[dict], Optional[Figure]]] = {
    "relearning_curves": relearning_curves,
    "recovery_vs_k": recovery_vs_k,
    "forget_vs_test": forget_vs_test,
    "lmc": lmc,
    "weightspace_vs_recovery": weightspace_vs_recovery,
    "epsilon_distribution": epsilon_figure,  # distributional evaluation (distributional.py), when the sweep has it
}


TASK_SPACE_FIGURES: dict[str, Callable[[dict], Optional[Figure]]] = {
    f"task_space_{measure}": partial(task_space_heatmap, measure=measure)
    for measure in ("utility_x_healed", "healed", "utility")
}


def write_figures(summary: dict, folder: Path) -> dict[str, Path]:
    """Every figure the summary has data for, as `<name>.png` and `<name>.svg` in `folder`; name -> SVG path."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, draw in (TASK_SPACE_FIGURES if summary.get("task_space") else FIGURES).items():
        fig = draw(summary)
        if fig is None:
            continue
        for suffix in ("png", "svg"):
            fig.savefig(folder / f"{name}.{suffix}", metadata={"Date": None} if suffix == "svg" else None)
        written[name] = folder / f"{name}.svg"
    return written
