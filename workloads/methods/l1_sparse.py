"""`l1_sparse`: CE(r) + alpha * mean(|theta|), fine-tuning towards sparse weights."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method


def mean_abs(params: list[torch.Tensor]) -> torch.Tensor:
    """Mean over every entry of every tensor, so large layers weigh by their size."""
    return torch.cat([p.flatten() for p in params]).abs().mean()


@dataclass
class L1SparseConfig(MethodConfig):
    alpha: float = MISSING


@register_method("l1_sparse")
class L1Sparse(UnlearningMethod):
    Config = L1SparseConfig
    uses_forget_set = False

    def retain_loss(self, model, x, y, ctx):
        return F.cross_entropy(model(x), y) + self.cfg.alpha * mean_abs(list(model.parameters()))
