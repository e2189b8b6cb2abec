"""Every model a summary reports, as one list the figures, the HTML report, `compare` and the MLflow result runs
share: the original, the retrained control and each method setting, each with its per-seed rows in the shape of a
result (`unlearned` holding the model's own evaluation, whatever the model is), their means and sds over seeds
(seeds.over_seeds), and the same numbers flat under names MLflow accepts."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Optional

from orchestrator.report.seeds import over_seeds, setting_id, setting_name
from orchestrator.report.verdicts import readings, setting_of
from orchestrator.track.params import flatten


@dataclass
class Model:
    name: str  # as the tables print it: "original", "retrain (control)", "neggrad_plus lr=0.01 epochs=1.5"
    role: str  # original | retrain | unlearned
    method: str
    hparams: dict = field(default_factory=dict)
    start_from: Optional[dict] = None
    rows: list[dict] = field(default_factory=list)  # per seed: seed, run_id, unlearned, relearned, l2_to_original, lmc

    def __post_init__(self):
        self.stats = over_seeds(((r["seed"], r) for r in self.rows if r.get("unlearned")), "unlearned")["metrics"]

    def mean(self, name: str) -> Optional[float]:
        return (self.stats.get(name) or {}).get("mean")

    def sd(self, name: str) -> Optional[float]:
        return (self.stats.get(name) or {}).get("sd")

    @property
    def setting(self) -> str:
        """What sets it apart from its method's defaults: the setting's id for matching across sweeps."""
        return setting_id({"method": self.method, "hparams": self.hparams, "start_from": self.start_from})


def _control_row(seed: int, model: Optional[dict]) -> dict:
    model = model or {}
    return {
        "seed": seed,
        "run_id": model.get("run_id"),
        "unlearned": model or None,
        "relearned": model.get("relearned") or {},
        "l2_to_original": model.get("l2_to_original"),
        "lmc": model.get("lmc"),
        "distributional": model.get("distributional"),
    }


def models(summary: dict) -> list[Model]:
    """The original, the retrained control, then each method setting in the sweep's order. Result rows that are the
    retrained control itself (the `retrain` method listed) are left out: they would draw the control twice."""
    seeds = summary.get("seeds") or [
        {"seed": None, "original": summary.get("original"), "retrain": summary.get("retrain")}
    ]
    out = [
        Model(
            "original",
            "original",
            "original",
            rows=[_control_row(c["seed"], c["original"]) for c in seeds if c.get("original")],
        ),
        Model(
            "retrain (control)",
            "retrain",
            "retrain",
            rows=[_control_row(c["seed"], c["retrain"]) for c in seeds if c.get("retrain")],
        ),
    ]
    control_runs = {(c.get("retrain") or {}).get("run_id") for c in seeds}
    shared = summary.get("method_overrides", {})
    grouped: dict[str, list[dict]] = {}
    for result in summary.get("results", []):
        if result.get("run_id") is None or result["run_id"] not in control_runs:
            grouped.setdefault(setting_id(result), []).append(result)
    for rows in grouped.values():
        first = rows[0]
        out.append(
            Model(
                " ".join(setting_name(first, shared)).strip(),
                "unlearned",
                first["method"],
                first["hparams"],
                first.get("start_from"),
                rows,
            )
        )
    return out


def ks(summary: dict) -> list[int]:
    """The relearning k grid of the sweep, ascending."""
    return sorted({int(k) for m in models(summary) for r in m.rows for k in r["relearned"]})


def mlflow_name(name: str) -> str:
    """`unlearned.test_acc` -> `test_acc`, `relearned.k10.heldout_forget_acc` -> `relearned_k10_heldout_forget_acc`,
    `recovery.k0` -> `recovery_k0`, `lmc.loss_barrier` -> `loss_barrier`: one name per number in every run."""
    name = name.removeprefix("unlearned.").removeprefix("lmc.")
    return name.replace("relearned.k", "relearned_k").replace("recovery.k", "recovery_k").replace(".", "_")


def seed_numbers(row: dict) -> dict[str, float]:
    """One seed's numbers of one model, flat, under the names Model.mean takes (`unlearned.test_acc`, ...)."""
    stats = over_seeds([(row["seed"], row)], "unlearned")["metrics"] if row.get("unlearned") else {}
    return {name: entry["mean"] for name, entry in stats.items()}


def row_numbers(row: dict) -> dict[str, float]:
    """One seed's numbers of one model, flat, under MLflow names."""
    return {mlflow_name(name): value for name, value in seed_numbers(row).items()}


def curve_from_start(row: dict, k: str) -> Optional[list[list[float]]]:
    """The held-out forget accuracy curve of relearning with k forget examples, from step 0: a relearn node evaluates
    every `eval_every` steps from the first, so the model before the attack is the model's own evaluation (the same
    held-out examples, scored by its `evaluate` node), put at step 0. None without a curve."""
    curve = ((row.get("relearned") or {}).get(k) or {}).get("curve")
    if not curve:
        return None
    start = (row.get("unlearned") or {}).get("heldout_forget_acc")
    return ([[0, start]] if start is not None and curve[0][0] > 0 else []) + [list(point) for point in curve]


def start_label(start: Optional[dict], shared: dict) -> str:
    return "original" if start is None else " ".join(setting_name(start, shared)).strip()


ROLES = {"original": "original", "retrain": "control", "unlearned": "method"}  # the `role` tag of a result run


def rounded(name: str, value: float) -> float:
    """A result run's metric as the runs table shows it: accuracies and their differences (fractions, as in
    summary.json) to 4 decimals, 0.01 points; L2 and the loss barrier to 4 significant digits."""
    return float(f"{value:.4g}") if name in ("l2_to_original", "loss_barrier") else round(value, 4)


def varying_hparams(shown: list[Model]) -> set[str]:
    """The `hparams.*` names that take more than one value across the method settings that have them."""
    values: dict[str, set[str]] = {}
    for model in shown:
        if model.role == "unlearned":
            for name, value in flatten("hparams", model.hparams, {}).items():
                values.setdefault(name, set()).add(value)
    return {name for name, seen in values.items() if len(seen) > 1}


def result_runs(summary: dict) -> list[dict]:
    """One MLflow run per model and seed: params under the names node runs use (method, seed, start_from, and the
    `hparams.*` that tell the sweep's settings apart; every hparam is in the `hparams` tag and on the model's own run);
    tags a researcher filters and groups by (`setting`, `role`: original, control or method, and the setting's
    `reading`); every number of the results table as a metric, rounded as the table shows it; the relearning curves
    from step 0 (`curve_k<k>_heldout_forget_acc`, logged with their steps); and the run that holds the model."""
    shared, found, shown = summary.get("method_overrides", {}), readings(summary), models(summary)
    varying, runs = varying_hparams(shown), []
    for model in shown:
        for row in model.rows:
            if not row.get("unlearned"):
                continue
            hparams = {k: v for k, v in flatten("hparams", model.hparams, {}).items() if k in varying}
            params = {"method": model.method, "seed": row["seed"], **hparams}
            if model.role == "unlearned":
                params["start_from"] = start_label(model.start_from, shared)
            reading = found.get(setting_of(vars(model)), "") if model.role == "unlearned" else "reference"
            curves = {f"curve_k{k}_heldout_forget_acc": curve_from_start(row, k) for k in row["relearned"]}
            runs.append(
                {
                    "name": f"result {model.name} seed={row['seed']}",
                    "params": params,
                    "metrics": {name: rounded(name, value) for name, value in row_numbers(row).items()},
                    "curves": {name: [[s, round(v, 4)] for s, v in curve] for name, curve in curves.items() if curve},
                    "tags": {
                        "model_run_id": row["run_id"] or "",
                        "setting": model.name,
                        "role": ROLES[model.role],
                        "reading": reading,
                        **({"hparams": json.dumps(model.hparams, sort_keys=True)} if model.role == "unlearned" else {}),
                    },
                }
            )
    return runs


def results_columns(summary: dict) -> dict[str, list]:
    """The per-seed results as columns (model, seed, then every number), for MLflow's `log_table` on the sweep's run."""
    rows = [(model.name, row["seed"], row_numbers(row)) for model in models(summary) for row in model.rows]
    names = sorted({name for _, _, numbers in rows for name in numbers})
    table: dict[str, list] = {"model": [r[0] for r in rows], "seed": [r[1] for r in rows]}
    for name in names:
        table[name] = [numbers.get(name) for _, _, numbers in rows]
    return table


def mean_curve(curves: list[list]) -> tuple[list[float], list[float], list[float]]:
    """Steps every curve has, and the mean and sd (0 for one curve) across curves at each of them."""
    points = [dict(curve) for curve in curves]
    common = sorted(set.intersection(*[set(p) for p in points])) if points else []
    values = [[p[step] for p in points] for step in common]
    return common, [statistics.fmean(v) for v in values], [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
