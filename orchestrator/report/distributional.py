"""Distributional evaluation in the report (docs/distributional.md): summary.json's `distributional` section read off
the run's population score nodes, each score with the null beside it in every result row (so the results table,
the seeds' aggregates, MLflow's result runs and the HTML report carry them like every other number), the terminal
table, and the figure of the per-example epsilon distribution of each population.

summary["distributional"] = {"members", "null": {score numbers, "epsilons", "forget_quality_by_n", ...},
"null_relearned": {"<k>": {...}}, "settings": [{"method", "hparams", "seed", "unlearned": {...},
"relearned": {"<k>": {...}}}]}; every result row's (and the retrained control's) `distributional` holds the flat
numbers, `null_<name>` beside each, and `relearned.<k>` the same after the attack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from rich.table import Table

from orchestrator.report.seeds import setting_name

if TYPE_CHECKING:  # the summary is built without matplotlib and the report without torch: both only pass through
    from matplotlib.figure import Figure

    from orchestrator.execute import RunState

ROW_NUMBERS = (
    "forget_quality",
    "score",
    "retain_ratio",
    "test_ratio",
    "klom_forget_p95",
    "klom_retain_p95",
    "klom_test_p95",
)


def _scored(run: RunState, node) -> Optional[dict]:
    result = run[node].result
    return None if result is None else {k: v for k, v in result.items() if k != "runtime"}


def distributional_section(run: RunState) -> Optional[dict]:
    """summary["distributional"], or None for a sweep without populations."""
    populations = run.plan.dag.populations
    if populations is None:
        return None
    settings = [
        {
            "method": row.setting.name,
            "hparams": row.setting.hparams,
            "seed": row.seed,
            "start_from": None if row.setting.start is None else row.setting.start.as_dict(),
            "unlearned": _scored(run, row.score),
            "relearned": {str(k): _scored(run, node) for k, node in row.relearned.items()},
        }
        for row in populations.rows
    ]
    return {
        "members": populations.members,
        "null": _scored(run, populations.null),
        "null_relearned": {str(k): _scored(run, node) for k, node in populations.null_relearned.items()},
        "settings": settings,
    }


def _flat(scored: Optional[dict], null: Optional[dict]) -> dict:
    out = {name: scored[name] for name in ROW_NUMBERS if scored and name in scored}
    return out | {f"null_{name}": null[name] for name in ROW_NUMBERS if null and name in null}


def row_entry(scored: Optional[dict], relearned: dict, section: dict) -> Optional[dict]:
    """What a result row carries: the flat numbers with the null's beside them, and the same after each attack."""
    if scored is None:
        return None
    entry = {"members": section["members"], **_flat(scored, section["null"])}
    entry["relearned"] = {
        k: _flat(value, section["null_relearned"].get(k)) for k, value in relearned.items() if value is not None
    }
    return entry


def attach(summary: dict, section: dict) -> None:
    """Every result row of a setting with a population gets its `distributional` entry; the retrained control gets
    the null's (its own population is the independent retrained one)."""
    by_row = {(s["method"], repr(s["hparams"]), repr(s["start_from"]), s["seed"]): s for s in section["settings"]}
    for result in summary["results"]:
        found = by_row.get((result["method"], repr(result["hparams"]), repr(result["start_from"]), result["seed"]))
        if found is not None:
            result["distributional"] = row_entry(found["unlearned"], found["relearned"], section)
    for control in summary["seeds"]:
        if control.get("retrain"):
            control["retrain"]["distributional"] = row_entry(section["null"], section["null_relearned"], section)


def _number(value: Optional[float], digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def distributional_table(summary: dict) -> Optional[Table]:
    """Per population: forget quality F with the null's beside it, the final score and its accuracy ratios, KLoM P95
    on forget / retain / test, and F after each relearning attack."""
    section = summary.get("distributional")
    if not section or not section.get("null"):
        return None
    ks = sorted(section["null_relearned"], key=int)
    table = Table(
        title=f"{summary['sweep']}: distributional evaluation, {section['members']} models per population against "
        f"{section['members']} retrained ones (null: {section['members']} retrained from other seeds)"
    )
    columns = ["population", "seed", "F", "null F", "score", "RA ratio", "TA ratio", "KLoM95 forget", "retain", "test"]
    for column in columns + [f"F k={k} (null)" for k in ks]:
        table.add_column(column, justify="left" if column == "population" else "right")
    shared = summary.get("method_overrides", {})
    null = section["null"]
    rows = [("null: retrained vs retrained", "", null, section["null_relearned"])]
    rows += [
        (" ".join(setting_name(s, shared)).strip(), str(s["seed"]), s["unlearned"], s["relearned"])
        for s in section["settings"]
        if s["method"] != "retrain"
    ]
    for name, seed, scored, relearned in rows:
        scored = scored or {}
        after = [
            f"{_number((relearned.get(k) or {}).get('forget_quality'))} "
            f"({_number((section['null_relearned'].get(k) or {}).get('forget_quality'))})"
            for k in ks
        ]
        table.add_row(
            name,
            seed,
            _number(scored.get("forget_quality")),
            _number(null.get("forget_quality")),
            *[_number(scored.get(n)) for n in ("score", "retain_ratio", "test_ratio")],
            *[_number(scored.get(f"klom_{split}_p95"), 2) for split in ("forget", "retain", "test")],
            *after,
        )
    return table


def epsilon_figure(summary: dict) -> Optional[Figure]:
    """The per-example epsilon of each population against the reference, as the share of forget examples at or below
    each epsilon (the null dashed), with the competition's buckets of 0.5 shaded by the points they score."""
    section = summary.get("distributional")
    if not section or not (section.get("null") or {}).get("epsilons"):
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 4.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    shared = summary.get("method_overrides", {})
    curves = [("null: retrained vs retrained", section["null"]["epsilons"], {"linestyle": "--", "color": "black"})]
    for i, s in enumerate(x for x in section["settings"] if x["method"] != "retrain" and x["unlearned"]):
        name = " ".join(setting_name(s, shared)).strip() + (f" seed={s['seed']}" if len(summary["seeds"]) > 1 else "")
        curves.append((name, s["unlearned"]["epsilons"], {"color": f"C{i % 10}"}))
    for name, eps, style in curves:
        ordered = sorted(eps)
        ax.step(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], where="post", label=name, **style)
    top = max(max(eps) for _, eps, _ in curves)
    for b in range(int(min(top, 10) / 0.5) + 1):
        ax.axvspan(0.5 * b, 0.5 * (b + 1), color="0.5", alpha=0.12 * 0.5**b, linewidth=0)
    ax.set_xlabel("epsilon per forget example (capped at 50; buckets of 0.5 score 1, 1/2, 1/4, ...)")
    ax.set_ylabel("share of forget examples at or below")
    ax.set_xlim(0, min(top, 10) + 0.25)
    fig.suptitle(f"Per-example epsilon against the retrained population, N = {section['members']}")
    ax.legend(fontsize="small", loc="lower right")
    return fig
