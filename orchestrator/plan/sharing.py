"""What a planned sweep's expensive parents serve, in words, for `plan`: how many originals there are and per what
(seed, or corruption x seed in a task space), and, for each, how many discovery rates, method settings, unlearned
models, retrained baselines and weight-space comparisons hang from it; and what one memorization estimate, or each
worst-case selection, serves."""

from __future__ import annotations

from statistics import fmean

from orchestrator.plan.dag import SweepDAG
from orchestrator.plan.population import sharing_lines


def sharing(dag: SweepDAG) -> list[str]:
    lines = []
    if dag.memorization is not None:
        readers = sum(1 for node in dag.nodes if node.inputs.get("forget_scores") is dag.memorization)
        lines.append(f"1 memorization estimate chooses the forget set of {readers} nodes, over every seed")
    selections = [node for node in dag.nodes if node.kind == "select_forget"]
    if selections:
        readers = fmean(sum(1 for n in dag.nodes if n.inputs.get("forget_scores") is s) for s in selections)
        lines.append(
            f"{len(selections)} worst-case selection(s), one per original, each choosing the forget set of {readers:g} "
            "nodes (its retrained control and every unlearned model, attack, L2 and LMC of its seed)"
        )
    controls = list(dag.controls.values())
    originals = list(dict.fromkeys(c.original.model for c in controls))
    if not originals:
        return lines
    if dag.populations is not None:
        lines.extend(sharing_lines(dag.populations, len(originals)))
    per = "corruption × seed" if any(c.cell is not None for c in controls) else "seed"
    rates = fmean(len({c.cell for c in controls if c.original.model is o}) for o in originals)
    unlearn = fmean(
        sum(1 for n in dag.nodes if n.kind == "unlearn" and n.inputs.get("original") is o) for o in originals
    )
    settings = len({row.setting.label for row in dag.results if not row.setting.is_oracle})
    baselines = fmean(sum(1 for c in controls if c.original.model is o) for o in originals)
    compared = fmean(sum(1 for n in dag.nodes if n.kind == "distance" and n.inputs.get("a") is o) for o in originals)
    where = f"{rates:g} discovery rates x " if per != "seed" else ""
    # train.retrain.init: fresh (workloads/train.py RetrainConfig) draws the baselines' initial weights anew.
    fresh = any(getattr(c.retrain.model.config.train.retrain, "init", None) == "fresh" for c in controls)
    init = "start from a fresh init" if fresh else "share its initial weights"
    lines.append(
        f"{len(originals)} originals, one per {per}, each shared by {where}{settings} method settings: "
        f"{unlearn:g} unlearn "
        f"nodes start from it and {baselines:g} retrained baseline(s) {init}; it is the L2/LMC "
        f"reference of {compared:g} of those models"
    )
    return lines
