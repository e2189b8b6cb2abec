"""`weight_dist_reg`: CE(r) - alpha * sqrt(mean((theta_0 - theta)^2) + 1e-8): push the weights away from the
original's while keeping the retain set right. theta_0 is always the original, even when chained after another
method."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method


def rms_distance(params: list[torch.Tensor], reference: list[torch.Tensor], eps: float = 1e-8) -> torch.Tensor:
    diff = torch.cat([(r.detach() - p).flatten() for p, r in zip(params, reference)])
    return torch.sqrt(diff.square().mean() + eps)


@dataclass
class WeightDistRegConfig(MethodConfig):
    alpha: float = MISSING


@register_method("weight_dist_reg")
class WeightDistReg(UnlearningMethod):
    Config = WeightDistRegConfig
    uses_forget_set = False

    def retain_loss(self, model, x, y, ctx):
        distance = rms_distance(list(model.parameters()), list(ctx.original.parameters()))
        return F.cross_entropy(model(x), y) - self.cfg.alpha * distance
