"""summary.json: the machine-readable result of a sweep (its schema in README.md, "Design in one page"), read off
the run's state of its plan.
A corrupted-data task space adds its cell (`corruption`, `discovery_rate`) to every row and control, and the
`task_space` section (per-cell means, heatmap data and averages over the space: task_space.py)."""

from __future__ import annotations

from statistics import fmean
from typing import Optional

from scipy.stats import spearmanr

from orchestrator.execute import RunState, Status
from orchestrator.plan import ModelNodes, Node
from orchestrator.report.distributional import attach, distributional_section
from orchestrator.report.forget_sets import forget_section
from orchestrator.report.seeds import aggregate, recovery, setting_id
from orchestrator.report.task_space import task_space
from orchestrator.report.verdicts import verdicts
from workloads.weightspace import error_barrier

RELEARN_METRICS = ("heldout_forget_acc", "test_acc", "heldout_forget_acc_final", "test_acc_final")
MODEL_METRICS = ("forget_acc", "heldout_forget_acc", "retain_acc", "test_acc", "tow", "mia_acc", "mia_auc")
# Reported where present: canaries left; a corrupted-data task's measures (workloads/metrics.py `healed`).
EXTRA_METRICS = ("canary_acc", "utility", "healed", "utility_x_healed", "healed_trigger")


def _result(run: RunState, node: Optional[Node]) -> Optional[dict]:
    return None if node is None else run[node].result


def _model_metrics(run: RunState, nodes: ModelNodes) -> Optional[dict]:
    result = _result(run, nodes.evaluate)
    if result is None:
        return None
    extra = {m: result[m] for m in EXTRA_METRICS if m in result}
    return {**{m: result[m] for m in MODEL_METRICS}, **extra, "run_id": run[nodes.model].run_id}


def _relearned(run: RunState, attacks: dict[int, Node]) -> dict:
    """Per k: means of the last `report_last` evaluations, as the reference's figures plot them, the final values,
    and the curve of held-out forget accuracy (the controls' curves are the references of the relearning figure)."""
    out = {}
    for k, node in attacks.items():
        result = _result(run, node)
        if result is not None:
            out[str(k)] = {**{m: result[m] for m in RELEARN_METRICS if m in result}, "curve": result["curve"]}
    return out


def _lmc(run: RunState, node: Optional[Node]) -> Optional[dict]:
    result = _result(run, node)
    if result is None:
        return None
    return {
        "t": result["t"],
        "test_acc": result["test_acc"],
        "forget_acc": result["forget_acc"],
        "loss_barrier": result["loss_barrier"],
        "error_barrier": result.get("error_barrier", error_barrier(result["t"], result["test_acc"])),
    }


def _l2(run: RunState, node: Optional[Node]) -> Optional[float]:
    result = _result(run, node)
    return None if result is None else result["l2"]


def _controls(run: RunState) -> list[dict]:
    controls = []
    for seed_nodes in run.plan.dag.controls.values():
        retrain = _model_metrics(run, seed_nodes.retrain)
        if retrain is not None:
            retrain |= {
                "relearned": _relearned(run, seed_nodes.retrain.relearn),
                "l2_to_original": _l2(run, seed_nodes.retrain.distance),
                "lmc": _lmc(run, seed_nodes.retrain.interpolate),
            }
        original = _model_metrics(run, seed_nodes.original)
        if original is not None:
            original["relearned"] = _relearned(run, seed_nodes.original.relearn)
        cell = seed_nodes.cell.as_dict() if seed_nodes.cell is not None else {}
        controls.append({"seed": seed_nodes.seed, **cell, "original": original, "retrain": retrain})
    return controls


def build_summary(run: RunState, executor: str, wall_seconds: float) -> dict:
    dag, counts, spec = run.plan.dag, run.counts(), run.plan.spec
    controls = _controls(run)
    results = [
        {
            "method": row.setting.name,
            "hparams": row.setting.hparams,
            "seed": row.seed,
            **(row.cell.as_dict() if row.cell is not None else {}),
            "start_from": None if row.setting.start is None else row.setting.start.as_dict(),
            "run_id": run[row.nodes.model].run_id,
            "unlearned": _model_metrics(run, row.nodes),
            "relearned": _relearned(run, row.nodes.relearn),
            "l2_to_original": _l2(run, row.nodes.distance),
            "lmc": _lmc(run, row.nodes.interpolate),
        }
        for row in dag.results
    ]
    # The oracle's rows are the retrained control itself: not an unlearned model whose resistance is predicted.
    unlearned = [result for row, result in zip(dag.results, results) if not row.setting.is_oracle]
    population = distributional_section(run)  # populations of models against the retrained one (and the null)
    if population is not None:
        attach({"results": results, "seeds": controls}, population)
    summary = {
        "sweep": spec.name,
        "sweep_id": run.sweep_id,
        "executor": executor,
        "wall_seconds": round(wall_seconds, 3),
        "nodes": {
            "total": len(dag.nodes),
            "executed": counts[Status.EXECUTED],
            "cached": counts[Status.CACHED],
            "failed": counts[Status.FAILED] + counts[Status.SKIPPED],
        },
        "method_overrides": dict(spec.method_overrides),  # hparams set for every method alike
        "forget": forget_section(run),  # the forget set's settings (and a worst-case selection's, per seed)
        "original": controls[0]["original"],
        "retrain": controls[0]["retrain"],
        "seeds": controls,  # every seed's controls; "original"/"retrain" above are the first seed's
        "results": results,
        # every setting and control: mean, sd, n over seeds (in a task space per cell; its controls in `task_space`)
        "over_seeds": aggregate(results, [] if spec.corruption else controls),
        "correlations": correlations(unlearned),
    }
    summary["verdicts"] = verdicts(summary)  # looks clean / recovers / the control stays put, per setting
    if population is not None:
        summary["distributional"] = population
    if spec.corruption is not None:
        summary["task_space"] = task_space(summary)
    return summary


def correlations(results: list[dict]) -> dict:
    """Spearman rank correlation, across method settings, between a weight-space measurement and how much held-out
    forget accuracy relearning brings back (relearned - unlearned), per k: the study's central claim is that
    distance and barrier to the original predict resistance to relearning. Each setting counts once, by its means
    over the seeds that have both numbers (`n` is the number of settings)."""
    out: dict = {}
    ks = sorted({k for r in results for k in r["relearned"]}, key=int)
    for measure, value in (
        ("l2_to_original", lambda r: r["l2_to_original"]),
        ("loss_barrier", lambda r: (r["lmc"] or {}).get("loss_barrier")),
        ("error_barrier", lambda r: (r["lmc"] or {}).get("error_barrier")),
    ):
        for k in ks:
            per_setting: dict[str, list[tuple[float, float]]] = {}
            for r in results:
                if value(r) is not None and recovery(r, k) is not None:
                    per_setting.setdefault(setting_id(r), []).append((value(r), recovery(r, k)))
            pairs = [(fmean(a for a, _ in seeds), fmean(b for _, b in seeds)) for seeds in per_setting.values()]
            entry = {"k": int(k), "n": len(pairs), "spearman": None, "p_value": None}
            if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
                rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
                entry["spearman"], entry["p_value"] = float(rho), float(p)
            out[f"{measure}_vs_recovery_k{k}"] = entry
    return out
