"""`npo` (negative preference optimisation, Zhang et al. 2024), a baseline of the REM study and REM's removal step:
on the forget set, -(2 / beta) * log sigmoid(beta * (CE_theta - CE_ref)), the reference being the frozen original;
the loss falls as the model's cross-entropy rises above the original's, and flattens out (unlike gradient ascent,
whose loss has no floor). Plus alpha * CE on the retain set (alpha = 0: the forget term alone)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, UnlearningMethod, register_method


def npo_loss(logits: torch.Tensor, y: torch.Tensor, reference_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Mean over the batch of -(2 / beta) * log sigmoid(beta * (CE(logits, y) - CE(reference_logits, y)))."""
    gap = F.cross_entropy(logits, y, reduction="none") - F.cross_entropy(reference_logits, y, reduction="none")
    return -(2.0 / beta) * F.logsigmoid(beta * gap).mean()


@dataclass
class NPOConfig(OptimizerConfig):
    beta: float = MISSING
    alpha: float = MISSING  # weight of the retain term


@register_method("npo")
class NPO(UnlearningMethod):
    Config = NPOConfig

    def retain_loss(self, model, x, y, ctx):
        return self.cfg.alpha * F.cross_entropy(model(x), y) if self.cfg.alpha else None

    def forget_loss(self, model, x, y, ctx):
        with torch.no_grad():
            reference = ctx.original(x)
        return npo_loss(model(x), y, reference, self.cfg.beta)
