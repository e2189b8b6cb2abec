"""Evaluation metrics, registered by name: pure functions of a model's logits on the evaluation splits.

Two scopes. A `split` metric is f(logits, labels, num_classes) -> value, computed on every split (retain, forget,
held-out forget, test, canaries, a corrupted-data task's `corrupted`, `triggered_test` or `patched_test` and
`test_unswapped`) and reported as
`<split>_<name>`. A `model` metric is f(scored, results) -> dict, computed once from every split's logits (`scored`:
split -> (logits, labels)) and the split metrics already in `results`. The `evaluate` node runs the split metrics, then
the model metrics, in name order; the model is run once per split, whatever the number of metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from workloads.mia import loss_attack
from workloads.registry import Registry

NAN = float("nan")
Scored = dict[str, tuple[Optional[torch.Tensor], torch.Tensor]]  # split -> (logits or None when empty, labels)


@dataclass(frozen=True)
class Metric:
    scope: str  # "split" | "model"
    compute: Callable


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, scope: str):
    assert scope in ("split", "model"), scope

    def add(compute: Callable) -> Callable:
        METRICS.register(name)(Metric(scope, compute))
        return compute

    return add


@register_metric("acc", "split")
def accuracy(logits: Optional[torch.Tensor], y: torch.Tensor, num_classes: int) -> float:
    return NAN if len(y) == 0 else (logits.argmax(1) == y).float().mean().item()


@register_metric("loss", "split")
def mean_loss(logits: Optional[torch.Tensor], y: torch.Tensor, num_classes: int) -> float:
    return NAN if len(y) == 0 else F.cross_entropy(logits, y).item()


@register_metric("per_class_acc", "split")
def per_class_accuracy(logits: Optional[torch.Tensor], y: torch.Tensor, num_classes: int) -> list[float]:
    """Accuracy on each class's examples; NaN for a class the split does not hold."""
    if len(y) == 0:
        return [NAN] * num_classes
    correct = (logits.argmax(1) == y).float()
    counts = torch.bincount(y, minlength=num_classes).float()
    hits = torch.bincount(y, weights=correct, minlength=num_classes)
    return torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(counts, NAN)).tolist()


@register_metric("tow", "model")
def tug_of_war(scored: Scored, results: dict) -> dict:
    """The reference's single-number trade-off: retain_acc x (1 - forget_acc) x test_acc."""
    return {"tow": results["retain_acc"] * (1 - results["forget_acc"]) * results["test_acc"]}


@register_metric("mia", "model")
def membership_inference(scored: Scored, results: dict) -> dict:
    """Loss-based membership inference, forget (members) against test (non-members); seeded, so a rerun agrees."""
    losses = {
        split: F.cross_entropy(logits, y, reduction="none").float().cpu().numpy()
        for split, (logits, y) in scored.items()
        if split in ("forget", "test")
    }
    attack = loss_attack(losses["forget"], losses["test"], seed=0)
    return {"mia_acc": attack["acc"], "mia_auc": attack["auc"]}


@register_metric("healed", "model")
def healed(scored: Scored, results: dict) -> dict:
    """A corrupted-data task's measures (REM): `utility` = test accuracy (on the classes an inter-class swap leaves
    alone when the corruption gives `test_unswapped`, as the reference's tables do); `healed` = accuracy on the
    corrupted training examples against their true labels; their product; for a trigger also `healed_trigger`: the
    share of triggered test images of the other classes no longer sent to the target (`triggered_test`), or the
    accuracy on every patched test image against its true label (`patched_test`, the reference's "Healed (Test)").
    Nothing without a corruption (workloads/corruptions.py makes the splits)."""
    if "corrupted" not in scored:
        return {}
    utility = results["test_unswapped_acc"] if "test_unswapped" in scored else results["test_acc"]
    out = {"utility": utility, "healed": results["corrupted_acc"]}
    out["utility_x_healed"] = out["utility"] * out["healed"]
    if "triggered_test" in scored:
        out["healed_trigger"] = 1.0 - results["triggered_test_acc"]
    elif "patched_test" in scored:
        out["healed_trigger"] = results["patched_test_acc"]
    return out


def compute_metrics(scored: Scored, num_classes: int) -> dict:
    """Every registered metric on these logits: split metrics first (`<split>_<name>`), then model metrics."""
    results: dict = {}
    for split, (logits, y) in scored.items():
        for name in METRICS:
            metric = METRICS.get(name)
            if metric.scope == "split":
                results[f"{split}_{name}"] = metric.compute(logits, y, num_classes)
    for name in METRICS:
        metric = METRICS.get(name)
        if metric.scope == "model":
            results.update(metric.compute(scored, results))
    return results
