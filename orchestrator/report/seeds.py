"""Seeds as an axis: every method setting (and each control) over the seeds that reached it, as mean, sample
standard deviation and n of each number the results table reports. The per-seed rows stay in `results`; these are
what a paper's table prints, and what the correlations rank."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from typing import Optional

from orchestrator.spec.defaults import changed_hparams

CELL = ("corruption", "discovery_rate")  # where a row of a corrupted-data task space sits


def setting_id(result: dict) -> str:
    """A method setting regardless of seed: the method, its hparams and what it started from (and, in a task space,
    its cell)."""
    cell = [result[k] for k in CELL if k in result]
    return json.dumps([result["method"], result["hparams"], result.get("start_from")] + cell, sort_keys=True)


def recovery(result: dict, k: str) -> Optional[float]:
    """Held-out forget accuracy that relearning with k forget examples brought back: relearned - unlearned."""
    unlearned, relearned = result.get("unlearned"), result.get("relearned", {}).get(k)
    if not unlearned or not relearned:
        return None
    return relearned["heldout_forget_acc"] - unlearned["heldout_forget_acc"]


def numbers(row: dict, model_key: str) -> dict[str, float]:
    """The flat numbers of one seed's row: `<model_key>.<metric>`, `relearned.k<k>.<metric>`, `recovery.k<k>`,
    `l2_to_original`, `lmc.<barrier>`, and the distributional scores (`distributional.<score>`, the null's as
    `distributional.null_<score>`, `distributional.relearned.k<k>.<score>`)."""
    model = row.get(model_key) or {}
    out = {
        f"{model_key}.{m}": v
        for m, v in model.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and m != "l2_to_original"
    }
    for k, measured in (row.get("relearned") or {}).items():
        out |= {f"relearned.k{k}.{m}": v for m, v in measured.items() if isinstance(v, (int, float))}
        if model_key == "unlearned" and recovery(row, k) is not None:
            out[f"recovery.k{k}"] = recovery(row, k)
    if row.get("l2_to_original") is not None:
        out["l2_to_original"] = row["l2_to_original"]
    for barrier in ("loss_barrier", "error_barrier"):
        if (row.get("lmc") or {}).get(barrier) is not None:
            out[f"lmc.{barrier}"] = row["lmc"][barrier]
    population = row.get("distributional") or (row.get(model_key) or {}).get("distributional") or {}
    out |= {f"distributional.{m}": v for m, v in population.items() if isinstance(v, float)}
    for k, measured in (population.get("relearned") or {}).items():
        out |= {f"distributional.relearned.k{k}.{m}": v for m, v in measured.items() if isinstance(v, float)}
    return out


def describe(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def over_seeds(rows: Iterable[tuple[int, dict]], model_key: str) -> dict:
    """mean / sd / n per number over (seed, row) pairs, and the seeds that contributed."""
    per_name: dict[str, list[float]] = {}
    seeds = []
    for seed, row in rows:
        seeds.append(seed)
        for name, value in numbers(row, model_key).items():
            per_name.setdefault(name, []).append(float(value))
    return {"seeds": seeds, "metrics": {name: describe(values) for name, values in sorted(per_name.items())}}


def aggregate(results: list[dict], controls: list[dict]) -> dict:
    """{"settings": [{"method", "hparams", "start_from", "seeds", "metrics"}], "original": {...}, "retrain": {...}}."""
    grouped: dict[str, list[dict]] = {}
    for result in results:
        grouped.setdefault(setting_id(result), []).append(result)
    settings = [
        {
            "method": rows[0]["method"],
            "hparams": rows[0]["hparams"],
            "start_from": rows[0].get("start_from"),
            **{k: rows[0][k] for k in CELL if k in rows[0]},
            **over_seeds(((r["seed"], r) for r in rows if r.get("unlearned")), "unlearned"),
        }
        for rows in grouped.values()
    ]
    out = {"settings": settings}
    for control in ("original", "retrain"):
        rows = [
            (c["seed"], {control: c[control], **{k: c[control].get(k) for k in ("relearned", "l2_to_original", "lmc")}})
            for c in controls
            if c.get(control)
        ]
        out[control] = over_seeds(rows, control)
    return out


def mean_of(entry: dict, name: str) -> Optional[float]:
    metric = entry["metrics"].get(name)
    return None if metric is None else metric["mean"]


def over_seeds_table(summary: dict) -> dict[str, list]:
    """summary["over_seeds"] as columns (one row per setting and control: its name, n, and `<number> mean` /
    `<number> sd` for every number), the form MLflow's `log_table` shows as a sortable table on the parent run."""
    over = summary.get("over_seeds") or {}
    entries = [("original", over.get("original")), ("retrain (control)", over.get("retrain"))]
    entries += [
        (" ".join(setting_name(entry, summary.get("method_overrides", {}))).strip(), entry)
        for entry in over.get("settings", [])
    ]
    entries = [(name, entry) for name, entry in entries if entry and entry["seeds"]]
    names = sorted({metric for _, entry in entries for metric in entry["metrics"]})
    table: dict[str, list] = {
        "model": [name for name, _ in entries],
        "n": [len(entry["seeds"]) for _, entry in entries],
    }
    for metric in names:
        for stat in ("mean", "sd"):
            table[f"{metric} {stat}"] = [(entry["metrics"].get(metric) or {}).get(stat) for _, entry in entries]
    return table


def setting_name(entry: dict, shared: dict) -> tuple[str, str]:
    """(method, what sets it apart): the hparams that differ from its defaults and the sweep's `shared`
    method_overrides, and the chain it started from."""
    after, start = "", entry.get("start_from")
    while start:
        after += f" after {start['method']} {changed_hparams(start['method'], start['hparams'], shared)}".rstrip()
        start = start["start_from"]
    cell = f" ({entry['corruption']}, rate {entry['discovery_rate']:g})" if "corruption" in entry else ""
    return entry["method"], f"{changed_hparams(entry['method'], entry['hparams'], shared)}{after}{cell}".strip()
