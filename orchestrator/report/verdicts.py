"""The study's reading of a sweep, per method setting over its seeds (the means of `over_seeds`):

- does the unlearned model *look clean*: test accuracy within `test_margin` of the original's and held-out forget
  accuracy within `forget_margin` of the retrained control's;
- does retain-only relearning (`k`, default 0) *bring the forget set back*: recovery (relearned minus unlearned
  held-out forget accuracy) of at least `recovered`;
- does the control *stay put* under the same attack: it moves by less than `control_still`.

*From Dormant to Deleted*'s claim is about settings that look clean and recover while the control stays put. The
defaults are the margins the quickstart is judged by (README); all are accuracy fractions.

One vocabulary everywhere a setting is judged (the terminal's tables, the HTML report, the MLflow result runs'
`reading` tag): `reading` words a verdict, and a setting is *damaged* when it lost more than `test_margin` of the
original's test accuracy, which is also what keeps it out of the report's usable models.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Optional

from orchestrator.report.seeds import mean_of

ROUNDING = 1e-9  # a difference of means that lands on a margin counts as on it, not a float's width past it


@dataclass(frozen=True)
class Criteria:
    test_margin: float = 0.03
    forget_margin: float = 0.10
    recovered: float = 0.20
    control_still: float = 0.05
    k: int = 0


def _difference(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def verdicts(summary: dict, criteria: Criteria = Criteria()) -> Optional[dict]:
    """{"criteria", "control_moved", "control_still", "settings": [{method, hparams, start_from, n, test_drop,
    forget_above_control, recovery, looks_clean, recovers, dormant}]}; None without the controls' numbers."""
    over = summary.get("over_seeds") or {}
    if not over.get("original", {}).get("seeds") or not over.get("retrain", {}).get("seeds"):
        return None
    relearned = f"relearned.k{criteria.k}.heldout_forget_acc"
    original_test = mean_of(over["original"], "original.test_acc")
    control = mean_of(over["retrain"], "retrain.heldout_forget_acc")
    control_moved = _difference(mean_of(over["retrain"], relearned), control)
    control_still = control_moved is not None and abs(control_moved) < criteria.control_still
    settings = []
    for entry in over["settings"]:
        test_drop = _difference(original_test, mean_of(entry, "unlearned.test_acc"))
        above = _difference(mean_of(entry, "unlearned.heldout_forget_acc"), control)
        recovery = mean_of(entry, f"recovery.k{criteria.k}")
        looks_clean = (
            test_drop is not None
            and above is not None
            and test_drop <= criteria.test_margin + ROUNDING
            and above <= criteria.forget_margin + ROUNDING
        )
        recovers = recovery is not None and recovery >= criteria.recovered - ROUNDING
        settings.append(
            {
                "method": entry["method"],
                "hparams": entry["hparams"],
                "start_from": entry.get("start_from"),
                "n": len(entry["seeds"]),
                "test_drop": test_drop,
                "forget_above_control": above,
                "recovery": recovery,
                "looks_clean": looks_clean,
                "recovers": recovers,
                "dormant": looks_clean and recovers and control_still,
            }
        )
    return {
        "criteria": asdict(criteria),
        "control_moved": control_moved,
        "control_still": control_still,
        "settings": settings,
    }


def explain(criteria: dict) -> str:
    """What the readings mean, in words and points, for a report's note."""
    return (
        f"looks clean: test accuracy within {100 * criteria['test_margin']:g} points of the original's and held-out "
        f"forget accuracy within {100 * criteria['forget_margin']:g} points of the retrained control's; damaged: more "
        f"than {100 * criteria['test_margin']:g} test points lost; forgets too little: neither; relearns: relearning "
        f"with k={criteria['k']} brings back {100 * criteria['recovered']:g} points or more of held-out forget accuracy"
    )


def reading(verdict: Optional[dict], test_margin: float) -> str:
    """A setting's verdict in words: how it looks, and whether it relearns (recovery in points)."""
    if verdict is None or verdict["test_drop"] is None:
        return ""
    looks = (
        "looks clean"
        if verdict["looks_clean"]
        else "damaged"
        if verdict["test_drop"] > test_margin + ROUNDING
        else "forgets too little"
    )
    if verdict["recovery"] is None:
        return looks
    return f"{looks}; {'relearns' if verdict['recovers'] else 'recovers'} {100 * verdict['recovery']:+.0f}"


def readings(summary: dict) -> dict[tuple, str]:
    """{(method, hparams as JSON, start_from as JSON): reading} for every judged setting of a summary."""
    found = summary.get("verdicts") or {}
    margin = found.get("criteria", {}).get("test_margin", Criteria.test_margin)
    return {setting_of(v): reading(v, margin) for v in found.get("settings") or []}


def setting_of(entry: dict) -> tuple:
    return (
        entry["method"],
        json.dumps(entry["hparams"], sort_keys=True),
        json.dumps(entry.get("start_from"), sort_keys=True),
    )
