"""summary.json (the machine-readable result of a sweep, schema in DESIGN.md) and the table printed after a run."""
from __future__ import annotations

from typing import Optional

from rich.table import Table

from orchestrator.dag import Node
from orchestrator.spec import changed_hparams
from orchestrator.sweep import Sweep

MODEL_METRICS = ("forget_acc", "heldout_forget_acc", "retain_acc", "test_acc", "tow", "mia_acc", "mia_auc")


def _result(sweep: Sweep, node: Node) -> Optional[dict]:
    return sweep.states[node].result


def _model_metrics(sweep: Sweep, evaluate: Node, model: Node) -> Optional[dict]:
    result = _result(sweep, evaluate)
    if result is None:
        return None
    extra = {"canary_acc": result["canary_acc"]} if "canary_acc" in result else {}
    return {**{m: result[m] for m in MODEL_METRICS}, **extra, "run_id": sweep.states[model].run_id}


def _relearned(sweep: Sweep, attacks: dict[int, Node], with_curve: bool) -> dict:
    out = {}
    for k, node in attacks.items():
        result = _result(sweep, node)
        if result is not None:
            out[str(k)] = {"heldout_forget_acc": result["heldout_forget_acc"], "test_acc": result["test_acc"]}
            if with_curve:
                out[str(k)]["curve"] = result["curve"]
    return out


def _lmc(sweep: Sweep, node: Node) -> Optional[dict]:
    result = _result(sweep, node)
    if result is None:
        return None
    return {"t": result["t"], "test_acc": result["test_acc"], "forget_acc": result["forget_acc"],
            "loss_barrier": result["loss_barrier"]}


def _l2(sweep: Sweep, node: Node) -> Optional[float]:
    result = _result(sweep, node)
    return None if result is None else result["l2"]


def build_summary(sweep: Sweep, sweep_id: str, executor: str, wall_seconds: float) -> dict:
    dag, counts = sweep.dag, sweep.counts()
    controls = []
    for seed in dag.original:
        retrain = _model_metrics(sweep, dag.retrain_eval[seed], dag.retrain[seed])
        if retrain is not None:
            retrain |= {"relearned": _relearned(sweep, dag.retrain_relearn[seed], with_curve=False),
                        "l2_to_original": _l2(sweep, dag.retrain_distance[seed]), "lmc": _lmc(sweep, dag.retrain_lmc[seed])}
        original = _model_metrics(sweep, dag.original_eval[seed], dag.original[seed])
        if original is not None:
            original["relearned"] = _relearned(sweep, dag.original_relearn[seed], with_curve=False)
        controls.append({"seed": seed, "original": original, "retrain": retrain})
    results = [{
        "method": r["method"], "hparams": r["hparams"], "seed": r["seed"],
        "start_from": None if r["start_from"] is None else r["start_from"].as_dict(),
        "run_id": sweep.states[r["unlearn"]].run_id,
        "unlearned": _model_metrics(sweep, r["evaluate"], r["unlearn"]),
        "relearned": _relearned(sweep, r["relearn"], with_curve=True),
        "l2_to_original": _l2(sweep, r["distance"]),
        "lmc": _lmc(sweep, r["interpolate"]),
    } for r in dag.results]
    return {
        "sweep": sweep.spec.name, "sweep_id": sweep_id, "executor": executor, "wall_seconds": round(wall_seconds, 3),
        "nodes": {"total": len(dag.nodes), "executed": counts["executed"], "cached": counts["cached"],
                  "failed": counts["failed"] + counts["skipped"]},
        "original": controls[0]["original"], "retrain": controls[0]["retrain"],
        "seeds": controls,  # every seed's controls; "original"/"retrain" above are the first seed's
        "results": results,
        "correlations": correlations(results),
    }


def correlations(results: list[dict]) -> dict:
    """Spearman rank correlation, across the sweep's unlearned models, between a weight-space measurement and how
    much held-out forget accuracy relearning brings back (relearned - unlearned), per k: the study's central claim
    is that distance and barrier to the original predict resistance to relearning."""
    from scipy.stats import spearmanr

    out: dict = {}
    ks = sorted({k for r in results for k in r["relearned"]}, key=int)
    for measure, value in (("l2_to_original", lambda r: r["l2_to_original"]),
                           ("loss_barrier", lambda r: (r["lmc"] or {}).get("loss_barrier"))):
        for k in ks:
            pairs = [(value(r), r["relearned"][k]["heldout_forget_acc"] - r["unlearned"]["heldout_forget_acc"])
                     for r in results if r["method"] != "retrain" and r["unlearned"] and k in r["relearned"] and value(r) is not None]
            entry = {"k": int(k), "n": len(pairs), "spearman": None, "p_value": None}
            if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
                rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
                entry["spearman"], entry["p_value"] = float(rho), float(p)
            out[f"{measure}_vs_recovery_k{k}"] = entry
    return out


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
