"""`random_relabel`: alpha * CE(r) + CE(f, y~) with y~ = (y + U{1..C-1}) mod C, a fresh wrong label every step;
`alternating_random_relabel` alternates full passes (forget first) like `neggrad_plus`."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method


def random_wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform over the C - 1 wrong classes: a non-zero offset can never land back on y."""
    offsets = torch.randint(1, num_classes, y.shape, generator=generator, device=generator.device)
    return (y + offsets.to(y.device)) % num_classes


@dataclass
class RandomRelabelConfig(MethodConfig):
    alpha: float = MISSING


@register_method("alternating_random_relabel", schedule="alternating")
@register_method("random_relabel")
class RandomRelabel(UnlearningMethod):
    Config = RandomRelabelConfig

    def retain_loss(self, model, x, y, ctx):
        return self.cfg.alpha * F.cross_entropy(model(x), y)

    def forget_loss(self, model, x, y, ctx):
        return F.cross_entropy(model(x), random_wrong_labels(y, ctx.num_classes, ctx.generator))
