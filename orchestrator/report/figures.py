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

import math
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path
from typing import Optional

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from orchestrator.report.distributional import epsilon_figure
from orchestrator.report.heatmaps import task_space_heatmap
from orchestrator.report.rows import Model, curve_from_start, mean_curve, models
from orchestrator.report.rows import ks as sweep_ks

DPI = 200  # of the PNG: sharp when printed at its size
WIDTH = 7.0  # inches: a page's text width, so the PNG and SVG print at their own size with 7-9 pt text
PANEL_HEIGHT = 2.3
COLUMNS = 3  # panels per row at most
FONTS = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
}
CONTROLS = {"original": {"linestyle": ":", "color": "0.45"}, "retrain": {"linestyle": "--", "color": "black"}}
# Method settings' colours: tab10 without its grey (the original's), then tab20b's dark ones; past them the colours
# repeat with another line style and marker, so no two settings ever look alike.
PALETTE = [f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)] + ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
LINESTYLES = ["-", "-.", (0, (5, 1, 1, 1, 1, 1))]
MARKERS = {"original": "^", "retrain": "s"}
SETTING_MARKERS = ["o", "D", "v", "P", "X", "*"]


def styles(shown: list[Model]) -> dict[str, dict]:
    """Each model's colour, line style and marker, the same in every figure: the controls fixed, every method
    setting its own."""
    out, i = {}, 0
    for model in shown:
        if model.role in CONTROLS:
            out[model.name] = {**CONTROLS[model.role], "marker": MARKERS[model.role]}
            continue
        turn = i // len(PALETTE)
        out[model.name] = {
            "color": PALETTE[i % len(PALETTE)],
            "linestyle": LINESTYLES[turn % len(LINESTYLES)],
            "marker": SETTING_MARKERS[turn % len(SETTING_MARKERS)],
        }
        i += 1
    return out


def scale(name: str) -> float:
    """Accuracies (and differences of them) are drawn in %, as every table prints them; L2 and the loss barrier as
    they are."""
    return 100.0 if "acc" in name or name.startswith("recovery") or name.endswith("error_barrier") else 1.0


def legible(draw: Callable[[dict], Optional[Figure]]) -> Callable[[dict], Optional[Figure]]:
    """Draws with the fonts above, so text is 7-9 pt on the printed page."""

    @wraps(draw)
    def drawn(summary: dict) -> Optional[Figure]:
        with rc_context(FONTS):
            return draw(summary)

    return drawn


def _figure(panels: int, title: str, blocks: int = 1) -> tuple[Figure, list]:
    """A figure of `blocks` blocks of `panels` panels each, at most COLUMNS to a row, every block starting a row;
    the panels' axes, block after block."""
    cols = min(COLUMNS, panels)
    block_rows = math.ceil(panels / cols)
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT * block_rows * blocks + 1.2), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # + 1.2 in for the title and the legend
    grid = [ax for row in fig.subplots(block_rows * blocks, cols, squeeze=False) for ax in row]
    axes = []
    for block in range(blocks):
        cells = grid[block * block_rows * cols : (block + 1) * block_rows * cols]
        axes += cells[:panels]
        for ax in cells[panels:]:
            ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes


def _legend(fig: Figure, axes: list) -> None:
    """One legend for the figure, below the panels: every label once."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(2, len(seen)))


def _point(ax, model: Model, style: dict, x: str, y: str, errors: bool) -> bool:
    """One model as a point at the means, with sd error bars on both axes when it has several seeds."""
    xs, ys = model.mean(x), model.mean(y)
    if xs is None or ys is None:
        return False
    ax.errorbar(
        [scale(x) * xs],
        [scale(y) * ys],
        xerr=[scale(x) * (model.sd(x) or 0.0)] if errors else None,
        yerr=[scale(y) * (model.sd(y) or 0.0)] if errors else None,
        marker=style["marker"],
        color=style["color"],
        linestyle="none",
        capsize=2,
        label=model.name,
    )
    return True


@legible
def relearning_curves(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    look, drawn = styles(shown), False
    if not grid:
        return None
    fig, axes = _figure(len(grid), f"{summary['sweep']}: held-out forget accuracy while relearning")
    for ax, k in zip(axes, grid):
        for model in shown:
            curves = [c for c in (curve_from_start(r, str(k)) for r in model.rows) if c]
            style = {key: v for key, v in look[model.name].items() if key != "marker"}
            if curves:
                steps, mean, sd = mean_curve(curves)
                ax.errorbar(
                    steps,
                    [100 * v for v in mean],
                    yerr=[100 * v for v in sd] if len(curves) > 1 else None,
                    capsize=1.5,
                    label=model.name,
                    **style,
                )
                drawn = True
            elif model.role != "unlearned" and model.mean(f"relearned.k{k}.heldout_forget_acc") is not None:
                # A summary written before controls kept their curves: the control's reported value as a level.
                ax.axhline(100 * model.mean(f"relearned.k{k}.heldout_forget_acc"), label=model.name, **style)
        ax.set(title=f"k={k} forget examples given", xlabel="relearning step", ylabel="held-out forget acc. (%)")
    _legend(fig, axes)
    return fig if drawn else None


@legible
def recovery_vs_k(summary: dict) -> Optional[Figure]:
    """Drawn only for a k grid of two or more: against one k it would be a column of points."""
    shown, grid = models(summary), sweep_ks(summary)
    if len(grid) < 2:
        return None
    look = styles(shown)
    fig, axes = _figure(1, f"{summary['sweep']}: held-out forget accuracy brought back by relearning")
    ax = axes[0]
    for model in shown:
        points = [(k, model.mean(f"recovery.k{k}"), model.sd(f"recovery.k{k}")) for k in grid]
        points = [p for p in points if p[1] is not None]
        if points:
            ax.errorbar(
                [p[0] for p in points],
                [100 * p[1] for p in points],
                yerr=[100 * (p[2] or 0.0) for p in points],
                capsize=2,
                label=model.name,
                **look[model.name],
            )
    ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
    ax.set(xlabel="k (forget examples given to the attacker)", ylabel="recovery (points)")
    _legend(fig, axes)
    return fig


@legible
def forget_vs_test(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    if not grid:
        return None
    look, errors, drawn = styles(shown), len(summary.get("seeds") or []) > 1, False
    fig, axes = _figure(len(grid), f"{summary['sweep']}: what relearning brings back against what the model keeps")
    for ax, k in zip(axes, grid):
        for model in shown:
            drawn |= _point(
                ax, model, look[model.name], "unlearned.test_acc", f"relearned.k{k}.heldout_forget_acc", errors
            )
        ax.set(title=f"k={k}", xlabel="test accuracy (%)", ylabel="held-out forget acc.\nafter relearning (%)")
    _legend(fig, axes)
    return fig if drawn else None


@legible
def lmc(summary: dict) -> Optional[Figure]:
    shown = models(summary)
    if not any(r.get("lmc") for m in shown for r in m.rows):
        return None
    look = styles(shown)
    fig, axes = _figure(2, f"{summary['sweep']}: linear path from the original (t=0) to each model (t=1)")
    for ax, split in zip(axes, ("test_acc", "forget_acc")):
        for model in shown:
            curves = [list(zip(r["lmc"]["t"], r["lmc"][split])) for r in model.rows if r.get("lmc")]
            if not curves:  # the original: its path is a point
                continue
            t, mean, sd = mean_curve(curves)
            style = {key: v for key, v in look[model.name].items() if key != "marker"}
            sd = [100 * v for v in sd] if len(curves) > 1 else None
            ax.errorbar(t, [100 * v for v in mean], yerr=sd, capsize=1.5, label=model.name, **style)
        ax.set(title=split.replace("_acc", " accuracy"), xlabel="t", ylabel="accuracy (%)")
    _legend(fig, axes)
    return fig


def rho_title(summary: dict, measure: str, k: int) -> str:
    """`k=0: ρ = −0.62 (p = 0.054, n = 10)`: Spearman's ρ across method settings with its p-value and n."""
    found = (summary.get("correlations") or {}).get(f"{measure}_vs_recovery_k{k}") or {}
    if found.get("spearman") is None:
        return f"k={k}: ρ n/a (n = {found.get('n', 0)})"
    p = found["p_value"]
    return f"k={k}: ρ = {found['spearman']:.2f} (p {'< 0.001' if p < 0.001 else f'= {p:.2g}'}, n = {found['n']})"


@legible
def weightspace_vs_recovery(summary: dict) -> Optional[Figure]:
    shown, grid = models(summary), sweep_ks(summary)
    measures = (("l2_to_original", "L2 distance to the original"), ("loss_barrier", "loss barrier (test)"))
    if not grid or not any(m.mean("l2_to_original") is not None for m in shown if m.role == "unlearned"):
        return None
    look, errors = styles(shown), len(summary.get("seeds") or []) > 1
    title = f"{summary['sweep']}: weight space against recovery (Spearman ρ across method settings)"
    fig, axes = _figure(len(grid), title, blocks=len(measures))
    for row, (measure, xlabel) in enumerate(measures):
        name = measure if measure == "l2_to_original" else f"lmc.{measure}"
        for ax, k in zip(axes[row * len(grid) : (row + 1) * len(grid)], grid):
            for model in shown:
                _point(ax, model, look[model.name], name, f"recovery.k{k}", errors)
            ax.set(title=rho_title(summary, measure, k), xlabel=xlabel, ylabel="recovery (points)")
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
