"""Heatmaps of a corrupted-data task space, drawn from a summary.json's `task_space` alone (nothing recomputed): one
panel per model (the original, the retrained baseline, every method setting), rows the corruptions from high to low
regularity, columns the discovery rates, each cell the mean over seeds of one measure (utility x healed by default)
in %, and the panel's title the model's average over the space ± its standard error over seeds. Plain
`matplotlib.figure.Figure`s on the Agg canvas, like figures.py."""

from __future__ import annotations

import math
from typing import Optional

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
WIDTH = 11.0  # inches, as figures.py
PANEL_HEIGHT = 2.3
COLUMNS = 4
TITLES = {
    "utility_x_healed": "utility × healed",
    "healed": "healed",
    "utility": "utility (test accuracy)",
    # test_split not_target: the share no longer sent to the target; true_label: accuracy against the true labels
    "healed_trigger": "triggered test images healed",
}


def _average(space: dict, model: str, measure: str) -> str:
    found = space["averages"].get(model, {}).get(measure)
    if not found:
        return ""
    se = "" if found["se"] is None else f" ± {100 * found['se']:.1f}"
    return f": {100 * found['mean']:.1f}{se}"


def task_space_heatmap(summary: dict, measure: str = "utility_x_healed") -> Optional[Figure]:
    space = summary.get("task_space")
    if not space:
        return None
    shown = [m for m in space["models"] if measure in space["heatmaps"].get(m, {})]
    if not shown:
        return None
    rows, columns = math.ceil(len(shown) / COLUMNS), min(COLUMNS, len(shown))
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT * rows + 1.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [ax for row in fig.subplots(rows, columns, squeeze=False) for ax in row]
    rates, corruptions = space["discovery_rates"], space["corruptions"]
    image = None
    for ax, model in zip(axes, shown):
        grid = [[math.nan if v is None else v for v in row] for row in space["heatmaps"][model][measure]]
        image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(
                        j,
                        i,
                        f"{100 * value:.0f}",
                        ha="center",
                        va="center",
                        fontsize="small",
                        color="white" if value < 0.6 else "black",
                    )
        ax.set_xticks(range(len(rates)), [f"{r:g}" for r in rates])
        ax.set_yticks(
            range(len(corruptions)), [f"{c}\n({space['regularity'][c]})" for c in corruptions], fontsize="small"
        )
        ax.set(title=f"{model}{_average(space, model, measure)}", xlabel="discovery rate")
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes[: len(shown)], shrink=0.8, label=f"{TITLES.get(measure, measure)} (mean over seeds)")
    fig.suptitle(
        f"{summary['sweep']}: {TITLES.get(measure, measure)} (%) over regularity × discovery rate; "
        "titles: average over the space ± SE over seeds"
    )
    return fig
