"""Weight-space evaluations: L2 distance and linear mode connectivity between two models of one architecture."""
from __future__ import annotations

import torch
from torch import nn

from workloads.train import evaluate


def l2_distance(model: nn.Module, state_a: dict, state_b: dict) -> dict:
    """L2 norm of the difference of all parameters (batch-norm affine included, running statistics excluded),
    with the per-parameter breakdown."""
    per_layer = {name: (state_a[name].float() - state_b[name].float()).norm().item() for name, _ in model.named_parameters()}
    return {"l2": sum(v * v for v in per_layer.values()) ** 0.5, "per_layer": per_layer}


def interpolate_states(state_a: dict, state_b: dict, t: float) -> dict:
    """(1 - t) * a + t * b for floating-point tensors (parameters and buffers); integer buffers come from the nearer end."""
    return {
        name: torch.lerp(a, state_b[name], t) if a.is_floating_point() else (a if t < 0.5 else state_b[name]).clone()
        for name, a in state_a.items()
    }


def loss_barrier(t: list[float], losses: list[float]) -> float:
    """max_t [L(t) - ((1 - t) L(0) + t L(1))]: how far the path rises above the straight line between its ends."""
    return max(loss - ((1 - s) * losses[0] + s * losses[-1]) for s, loss in zip(t, losses))


def interpolation_points(num_points: int) -> list[float]:
    return [i / (num_points - 1) for i in range(num_points)]


@torch.no_grad()
def linear_mode_connectivity(model: nn.Module, state_a: dict, state_b: dict, splits: dict[str, tuple],
                             num_classes: int, num_points: int = 21, barrier_split: str = "test") -> dict:
    """Evaluates loss and accuracy of every split at evenly spaced points between a (t=0) and b (t=1)."""
    ts = interpolation_points(num_points)
    result: dict = {"t": ts}
    for t in ts:
        model.load_state_dict(interpolate_states(state_a, state_b, t))
        for split, (x, y) in splits.items():
            metrics = evaluate(model, x, y, num_classes)
            result.setdefault(f"{split}_loss", []).append(metrics["loss"])
            result.setdefault(f"{split}_acc", []).append(metrics["acc"])
    result["loss_barrier"] = loss_barrier(ts, result[f"{barrier_split}_loss"])
    return result
