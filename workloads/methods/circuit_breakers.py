"""`circuit_breakers`: keep the hidden states of the retain set where the original has them, and make those of the
forget set orthogonal to the original's, shifting weight from the second goal to the first over the run.

retain: c_r * mean_l MSE(h_l(theta, r), h_l(orig, r));
forget: c_u * mean_l mean_batch ReLU(cos(h_l(theta, f), h_l(orig, f)))
with c_r = alpha (t+1)/T and c_u = alpha (1 - (t+1)/T). `layers` index `model(x, return_hidden=True)`'s hidden states
(0 is the stem, i the output of block i).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method


def coefficients(alpha: float, step: int, total_steps: int) -> tuple[float, float]:
    """(c_r, c_u) at 0-based `step` of `total_steps`."""
    progress = (step + 1) / total_steps
    return alpha * progress, alpha * (1.0 - progress)


def hidden_mse(hidden: list[torch.Tensor], reference: list[torch.Tensor], layers: list[int]) -> torch.Tensor:
    return sum(F.mse_loss(hidden[layer], reference[layer]) for layer in layers) / len(layers)


def hidden_cosine(hidden: list[torch.Tensor], reference: list[torch.Tensor], layers: list[int]) -> torch.Tensor:
    # ReLU: a representation already orthogonal or opposite to the original's is not pushed further.
    return sum(
        F.relu(F.cosine_similarity(hidden[layer].flatten(1), reference[layer].flatten(1), dim=-1)).mean()
        for layer in layers
    ) / len(layers)


@dataclass
class CircuitBreakersConfig(MethodConfig):
    alpha: float = MISSING
    layers: list[int] = MISSING


@register_method("circuit_breakers")
class CircuitBreakers(UnlearningMethod):
    Config = CircuitBreakersConfig

    def _hidden(self, model, x, ctx):
        _, hidden = model(x, return_hidden=True)
        with torch.no_grad():
            _, reference = ctx.original(x, return_hidden=True)
        return hidden, reference

    def retain_loss(self, model, x, y, ctx):
        c_r, _ = coefficients(self.cfg.alpha, ctx.step, ctx.total_steps)
        return c_r * hidden_mse(*self._hidden(model, x, ctx), self.cfg.layers)

    def forget_loss(self, model, x, y, ctx):
        _, c_u = coefficients(self.cfg.alpha, ctx.step, ctx.total_steps)
        return c_u * hidden_cosine(*self._hidden(model, x, ctx), self.cfg.layers)
