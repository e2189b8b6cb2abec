"""The report's ordering rule: which method settings resist relearning best among those still worth using. The
original and the retrained control are not ranked: they are the references every setting is read against.

A setting is usable when it is not *damaged* in the readings' sense (verdicts.py): its test accuracy (mean over
seeds) is within the readings' test margin of the original's, 3 points by default. `--test-floor` sets an absolute
floor instead. Usable settings come first, then the rest; within each group, the lowest held-out forget accuracy
after the strongest relearning attack (the largest k) comes first, since that is what an attacker gets back; ties go
to the higher test accuracy. A setting missing either number goes last."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from orchestrator.report.rows import Model
from orchestrator.report.verdicts import Criteria


@dataclass
class Ranked:
    model: Model
    usable: bool  # test accuracy at or above the floor


def default_floor(models: list[Model], summary: Optional[dict] = None) -> Optional[float]:
    """The original's test accuracy less the readings' test margin: the line below which a setting reads *damaged*."""
    original = next((m for m in models if m.role == "original"), None)
    test = None if original is None else original.mean("unlearned.test_acc")
    criteria = ((summary or {}).get("verdicts") or {}).get("criteria") or {}
    return None if test is None else test - criteria.get("test_margin", Criteria.test_margin)


def resistance_order(models: list[Model], k: Optional[int], floor: Optional[float]) -> list[Ranked]:
    """The method settings among `models` ordered by the rule above; `floor` None counts every one as usable."""

    def sort_key(model: Model):
        test = model.mean("unlearned.test_acc")
        after = None if k is None else model.mean(f"relearned.k{k}.heldout_forget_acc")
        missing = test is None or after is None
        usable = not missing and (floor is None or test >= floor - 1e-9)
        return (missing, not usable, math.inf if after is None else after, -(test or 0.0))

    settings = [m for m in models if m.role == "unlearned"]
    ordered = sorted(settings, key=sort_key)  # stable: equal settings keep the sweep's order
    return [Ranked(m, not sort_key(m)[0] and not sort_key(m)[1]) for m in ordered]
