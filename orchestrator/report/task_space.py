"""A corrupted-data task space read off a summary's rows (REM's reading, Schoepf et al. 2025): per model (the
original, the retrained baseline, every method setting) and cell (corruption x discovery rate), the mean and standard
error over seeds of utility (test accuracy), healed (accuracy on the corrupted training examples against their true
labels), their product and, for a trigger, the share of triggered test images not sent to the target class; the
same means as heatmap grids (corruptions from high to low regularity, by discovery rate); and each model's average
over the space, taken per seed over every cell that seed has and then as mean ± standard error over seeds."""

from __future__ import annotations

import math
import statistics
from typing import Optional

from orchestrator.report.seeds import CELL, setting_name
from workloads.corruptions import CORRUPTIONS, REGULARITY

MEASURES = ("utility", "healed", "utility_x_healed", "healed_trigger")


def describe(values: list[float]) -> dict:
    """mean, standard error of the mean (None for one value) and n."""
    n = len(values)
    se = statistics.stdev(values) / math.sqrt(n) if n > 1 else None
    return {"mean": statistics.fmean(values), "se": se, "n": n}


def model_rows(summary: dict) -> list[tuple[str, tuple[str, float], int, dict]]:
    """(model, (corruption, rate), seed, its evaluation) for every model of every cell and seed. Result rows that are
    the retrained baseline itself (the `retrain` method listed) are left out: the controls hold it already."""
    shared = summary.get("method_overrides", {})
    controls = summary.get("seeds") or []
    control_runs = {(c.get("retrain") or {}).get("run_id") for c in controls}
    rows = [
        (role, (c["corruption"], c["discovery_rate"]), c["seed"], c[role])
        for c in controls
        for role in ("original", "retrain")
        if c.get(role) and "corruption" in c
    ]
    for r in summary.get("results", []):
        if r.get("unlearned") and "corruption" in r and r.get("run_id") not in control_runs:
            name = " ".join(setting_name({k: v for k, v in r.items() if k not in CELL}, shared)).strip()
            rows.append((name, (r["corruption"], r["discovery_rate"]), r["seed"], r["unlearned"]))
    return rows


def _regularity(name: str) -> str:
    return CORRUPTIONS.get(name).regularity if name in CORRUPTIONS else "low"


def task_space(summary: dict) -> Optional[dict]:
    """{"corruptions", "regularity", "discovery_rates", "models", "cells": [{model, corruption, discovery_rate,
    <measure>: {mean, se, n}}], "heatmaps": {model: {measure: [[mean per rate] per corruption]}},
    "averages": {model: {measure: {mean, se, n}, "cells": int}}}; None without a task space's rows."""
    rows = model_rows(summary)
    if not rows:
        return None
    corruptions = sorted({cell[0] for _, cell, _, _ in rows}, key=lambda c: (REGULARITY.index(_regularity(c)), c))
    rates = sorted({cell[1] for _, cell, _, _ in rows})
    models = list(dict.fromkeys(model for model, _, _, _ in rows))
    per_cell: dict[tuple, dict[str, list[float]]] = {}
    per_seed: dict[tuple, dict[str, list[float]]] = {}
    for model, (corruption, rate), seed, metrics in rows:
        for measure in MEASURES:
            if metrics.get(measure) is not None:
                per_cell.setdefault((model, corruption, rate), {}).setdefault(measure, []).append(metrics[measure])
                per_seed.setdefault((model, seed), {}).setdefault(measure, []).append(metrics[measure])
    cells = [
        {"model": model, "corruption": c, "discovery_rate": r, **{m: describe(v) for m, v in found.items()}}
        for (model, c, r), found in per_cell.items()
    ]
    return {
        "corruptions": corruptions,
        "regularity": {c: _regularity(c) for c in corruptions},
        "discovery_rates": rates,
        "models": models,
        "cells": cells,
        "heatmaps": {model: _heatmaps(per_cell, model, corruptions, rates) for model in models},
        "averages": {model: _averages(per_cell, per_seed, model) for model in models},
    }


def _heatmaps(per_cell: dict, model: str, corruptions: list[str], rates: list[float]) -> dict:
    """measure -> [[the model's mean over seeds per rate] per corruption], for the measures it has."""

    def mean_at(corruption: str, rate: float, measure: str) -> Optional[float]:
        values = per_cell.get((model, corruption, rate), {}).get(measure)
        return statistics.fmean(values) if values else None

    return {
        measure: [[mean_at(c, r, measure) for r in rates] for c in corruptions]
        for measure in MEASURES
        if any(mean_at(c, r, measure) is not None for c in corruptions for r in rates)
    }


def _averages(per_cell: dict, per_seed: dict, model: str) -> dict:
    """The model's mean of each measure over the task space, per seed, described over the seeds."""
    seeds = [found for (m, _), found in per_seed.items() if m == model]
    averages = {
        measure: describe([statistics.fmean(found[measure]) for found in seeds if measure in found])
        for measure in MEASURES
        if any(measure in found for found in seeds)
    }
    return averages | {"cells": len({(c, r) for (m, c, r) in per_cell if m == model})}
