"""The report's ordering rule: which models resist relearning best among those still worth using.

A model is usable when its test accuracy (mean over seeds) reaches the floor; by default 90% of the retrained
control's, the model a method tries to imitate. Usable models come first, then the rest; within each group, the
lowest held-out forget accuracy after the strongest relearning attack (the largest k) comes first, since that is
what an attacker gets back; ties go to the higher test accuracy. A model missing either number goes last."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from orchestrator.report.rows import Model

FLOOR_OF_RETRAIN = 0.9


@dataclass
class Ranked:
    model: Model
    usable: bool  # test accuracy at or above the floor


def default_floor(models: list[Model]) -> Optional[float]:
    retrain = next((m for m in models if m.role == "retrain"), None)
    test = None if retrain is None else retrain.mean("unlearned.test_acc")
    return None if test is None else FLOOR_OF_RETRAIN * test


def resistance_order(models: list[Model], k: Optional[int], floor: Optional[float]) -> list[Ranked]:
    """`models` ordered by the rule above; `floor` None counts every model as usable."""

    def sort_key(model: Model):
        test = model.mean("unlearned.test_acc")
        after = None if k is None else model.mean(f"relearned.k{k}.heldout_forget_acc")
        missing = test is None or after is None
        usable = not missing and (floor is None or test >= floor)
        return (missing, not usable, math.inf if after is None else after, -(test or 0.0))

    ordered = sorted(models, key=sort_key)  # stable: equal models keep the sweep's order
    return [Ranked(m, not sort_key(m)[0] and not sort_key(m)[1]) for m in ordered]
