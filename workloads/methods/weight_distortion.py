"""`weight_distortion`: add N(0, sigma^2) noise to every parameter (seeded by the node), then fine-tune on retain."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method


@torch.no_grad()
def add_gaussian_noise(params: list[torch.Tensor], sigma: float, generator: torch.Generator) -> None:
    for p in params:
        p.add_(sigma * torch.randn(p.shape, generator=generator, device=generator.device, dtype=p.dtype).to(p.device))


@dataclass
class WeightDistortionConfig(MethodConfig):
    sigma: float = MISSING


@register_method("weight_distortion")
class WeightDistortion(UnlearningMethod):
    Config = WeightDistortionConfig
    uses_forget_set = False

    def edit_weights(self, model, ctx):
        add_gaussian_noise(list(model.parameters()), self.cfg.sigma, torch.Generator().manual_seed(ctx.seed))

    def retain_loss(self, model, x, y, ctx):
        return F.cross_entropy(model(x), y)
