"""Weight-space evaluations: L2 distance and linear mode connectivity between two models of one architecture.

The barriers follow Entezari et al. (2022, "The role of permutation invariance in linear mode connectivity"):
the largest rise of the path above the straight line between its endpoints' values, on the test set, with no
batch-norm recalibration unless `recompute_bn`. The loss barrier uses test cross-entropy; the error barrier the
test error 1 - accuracy, the form Frankle et al. (2020) plot. The reference study reports neither; they are this
tool's weight-space measurements beside its L2 distance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from workloads.train import evaluate


@dataclass
class LMCConfig:
    stride: float = 0.05  # t = 0, stride, 2 * stride, ..., 1 (21 points by default)
    recompute_bn: bool = False  # re-estimate batch-norm statistics on the retain set at every point


def l2_distance(model: nn.Module, state_a: dict, state_b: dict) -> dict:
    """L2 norm of the difference of all parameters (batch-norm affine included, running statistics excluded),
    with the per-parameter breakdown."""
    per_layer = {
        name: (state_a[name].float() - state_b[name].float()).norm().item() for name, _ in model.named_parameters()
    }
    return {"l2": sum(v * v for v in per_layer.values()) ** 0.5, "per_layer": per_layer}


def interpolate_states(state_a: dict, state_b: dict, t: float) -> dict:
    """(1 - t) * a + t * b for floating-point tensors (parameters and buffers); integer buffers come from the nearer
    end."""
    return {
        name: torch.lerp(a, state_b[name], t) if a.is_floating_point() else (a if t < 0.5 else state_b[name]).clone()
        for name, a in state_a.items()
    }


def loss_barrier(t: list[float], losses: list[float]) -> float:
    """max_t [L(t) - ((1 - t) L(0) + t L(1))]: how far the path rises above the straight line between its ends."""
    return max(loss - ((1 - s) * losses[0] + s * losses[-1]) for s, loss in zip(t, losses))


def error_barrier(t: list[float], accuracies: list[float]) -> float:
    """The barrier of the test error 1 - accuracy along the path (as a fraction, like the accuracies)."""
    return loss_barrier(t, [1.0 - acc for acc in accuracies])


def interpolation_points(stride: float) -> list[float]:
    steps = round(1 / stride)
    if steps < 1 or abs(steps * stride - 1) > 1e-9:
        raise ValueError(f"lmc.stride must divide 1 into whole steps, got {stride}")
    return [i / steps for i in range(steps + 1)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> None:
    """Replace batch-norm running statistics by their average over x (cumulative, not momentum)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None = cumulative moving average: every batch counts equally
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    model.eval()


@torch.no_grad()
def linear_mode_connectivity(
    model: nn.Module,
    state_a: dict,
    state_b: dict,
    splits: dict[str, tuple],
    num_classes: int,
    stride: float = 0.05,
    barrier_split: str = "test",
    recalibrate_on: Optional[torch.Tensor] = None,
) -> dict:
    """Loss and accuracy of every split at evenly spaced points from a (t=0) to b (t=1); with `recalibrate_on`,
    batch-norm statistics are re-estimated on those inputs at every point instead of interpolated."""
    ts = interpolation_points(stride)
    result: dict = {"t": ts}
    for t in ts:
        model.load_state_dict(interpolate_states(state_a, state_b, t))
        if recalibrate_on is not None:
            recalibrate_batchnorm(model, recalibrate_on)
        for split, (x, y) in splits.items():
            metrics = evaluate(model, x, y, num_classes)
            result.setdefault(f"{split}_loss", []).append(metrics["loss"])
            result.setdefault(f"{split}_acc", []).append(metrics["acc"])
    result["loss_barrier"] = loss_barrier(ts, result[f"{barrier_split}_loss"])
    result["error_barrier"] = error_barrier(ts, result[f"{barrier_split}_acc"])
    return result
