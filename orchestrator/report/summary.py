"""summary.json: the machine-readable result of a sweep (schema in DESIGN.md), read off the planned sweep's states."""
from __future__ import annotations

from typing import Optional

from scipy.stats import spearmanr

from orchestrator.plan import ModelNodes, Node, Sweep

MODEL_METRICS = ("forget_acc", "heldout_forget_acc", "retain_acc", "test_acc", "tow", "mia_acc", "mia_auc")


def _result(sweep: Sweep, node: Optional[Node]) -> Optional[dict]:
    return None if node is None else sweep.states[node].result


def _model_metrics(sweep: Sweep, nodes: ModelNodes) -> Optional[dict]:
    result = _result(sweep, nodes.evaluate)
    if result is None:
        return None
    extra = {"canary_acc": result["canary_acc"]} if "canary_acc" in result else {}
    return {**{m: result[m] for m in MODEL_METRICS}, **extra, "run_id": sweep.states[nodes.model].run_id}


def _relearned(sweep: Sweep, attacks: dict[int, Node], with_curve: bool) -> dict:
    out = {}
    for k, node in attacks.items():
        result = _result(sweep, node)
        if result is not None:
            out[str(k)] = {"heldout_forget_acc": result["heldout_forget_acc"], "test_acc": result["test_acc"]}
            if with_curve:
                out[str(k)]["curve"] = result["curve"]
    return out


def _lmc(sweep: Sweep, node: Optional[Node]) -> Optional[dict]:
    result = _result(sweep, node)
    if result is None:
        return None
    return {"t": result["t"], "test_acc": result["test_acc"], "forget_acc": result["forget_acc"],
            "loss_barrier": result["loss_barrier"]}


def _l2(sweep: Sweep, node: Optional[Node]) -> Optional[float]:
    result = _result(sweep, node)
    return None if result is None else result["l2"]


def _controls(sweep: Sweep) -> list[dict]:
    controls = []
    for seed, seed_nodes in sweep.dag.controls.items():
        retrain = _model_metrics(sweep, seed_nodes.retrain)
        if retrain is not None:
            retrain |= {"relearned": _relearned(sweep, seed_nodes.retrain.relearn, with_curve=False),
                        "l2_to_original": _l2(sweep, seed_nodes.retrain.distance), "lmc": _lmc(sweep, seed_nodes.retrain.interpolate)}
        original = _model_metrics(sweep, seed_nodes.original)
        if original is not None:
            original["relearned"] = _relearned(sweep, seed_nodes.original.relearn, with_curve=False)
        controls.append({"seed": seed, "original": original, "retrain": retrain})
    return controls


def build_summary(sweep: Sweep, sweep_id: str, executor: str, wall_seconds: float) -> dict:
    dag, counts = sweep.dag, sweep.counts()
    controls = _controls(sweep)
    results = [{
        "method": row.setting.name, "hparams": row.setting.hparams, "seed": row.seed,
        "start_from": None if row.setting.start is None else row.setting.start.as_dict(),
        "run_id": sweep.states[row.nodes.model].run_id,
        "unlearned": _model_metrics(sweep, row.nodes),
        "relearned": _relearned(sweep, row.nodes.relearn, with_curve=True),
        "l2_to_original": _l2(sweep, row.nodes.distance),
        "lmc": _lmc(sweep, row.nodes.interpolate),
    } for row in dag.results]
    # The oracle's rows are the retrained control itself: not an unlearned model whose resistance is predicted.
    unlearned = [result for row, result in zip(dag.results, results) if not row.setting.is_oracle]
    return {
        "sweep": sweep.spec.name, "sweep_id": sweep_id, "executor": executor, "wall_seconds": round(wall_seconds, 3),
        "nodes": {"total": len(dag.nodes), "executed": counts["executed"], "cached": counts["cached"],
                  "failed": counts["failed"] + counts["skipped"]},
        "original": controls[0]["original"], "retrain": controls[0]["retrain"],
        "seeds": controls,  # every seed's controls; "original"/"retrain" above are the first seed's
        "results": results,
        "correlations": correlations(unlearned),
    }


def correlations(results: list[dict]) -> dict:
    """Spearman rank correlation, across the unlearned models in `results`, between a weight-space measurement and
    how much held-out forget accuracy relearning brings back (relearned - unlearned), per k: the study's central
    claim is that distance and barrier to the original predict resistance to relearning."""
    out: dict = {}
    ks = sorted({k for r in results for k in r["relearned"]}, key=int)
    for measure, value in (("l2_to_original", lambda r: r["l2_to_original"]),
                           ("loss_barrier", lambda r: (r["lmc"] or {}).get("loss_barrier"))):
        for k in ks:
            pairs = [(value(r), r["relearned"][k]["heldout_forget_acc"] - r["unlearned"]["heldout_forget_acc"])
                     for r in results if r["unlearned"] and k in r["relearned"] and value(r) is not None]
            entry = {"k": int(k), "n": len(pairs), "spearman": None, "p_value": None}
            if len(pairs) >= 3 and len({a for a, _ in pairs}) > 1 and len({b for _, b in pairs}) > 1:
                rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
                entry["spearman"], entry["p_value"] = float(rho), float(p)
            out[f"{measure}_vs_recovery_k{k}"] = entry
    return out
