"""One-off weight edits, each followed by fine-tuning on the retain set like `finetune`:
`weight_distortion` adds N(0, sigma^2) noise, `weight_attenuation` scales by a factor, `weight_dropout` zeroes each
entry with probability p. The random edits draw from a CPU generator seeded by the node, so the same config gives
the same edit on any device."""

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, register_method
from workloads.methods.finetune import Finetune


def seeded_cpu_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def add_gaussian_noise(params: list[torch.Tensor], sigma: float, generator: torch.Generator) -> None:
    for p in params:
        p.add_(sigma * torch.randn(p.shape, generator=generator, device=generator.device, dtype=p.dtype).to(p.device))


@torch.no_grad()
def attenuate(params: list[torch.Tensor], factor: float) -> None:
    for p in params:
        p.mul_(factor)


@torch.no_grad()
def drop_entries(params: list[torch.Tensor], p_drop: float, generator: torch.Generator) -> None:
    for p in params:
        keep = torch.rand(p.shape, generator=generator, device=generator.device) >= p_drop
        p.mul_(keep.to(device=p.device, dtype=p.dtype))


@dataclass
class WeightDistortionConfig(MethodConfig):
    sigma: float = MISSING


@register_method("weight_distortion")
class WeightDistortion(Finetune):
    Config = WeightDistortionConfig

    def edit_weights(self, model, ctx):
        add_gaussian_noise(list(model.parameters()), self.cfg.sigma, seeded_cpu_generator(ctx.seed))


@dataclass
class WeightAttenuationConfig(MethodConfig):
    factor: float = MISSING


@register_method("weight_attenuation")
class WeightAttenuation(Finetune):
    Config = WeightAttenuationConfig

    def edit_weights(self, model, ctx):
        attenuate(list(model.parameters()), self.cfg.factor)


@dataclass
class WeightDropoutConfig(MethodConfig):
    p: float = MISSING


@register_method("weight_dropout")
class WeightDropout(Finetune):
    Config = WeightDropoutConfig

    def edit_weights(self, model, ctx):
        drop_entries(list(model.parameters()), self.cfg.p, seeded_cpu_generator(ctx.seed))
