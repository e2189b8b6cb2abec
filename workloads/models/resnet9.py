"""ResNet-9, registered as `resnet9`: the DAWNBench "ResNet-9" of Page (2018). Not the REM study's model, whose
reference code builds another ResNet-9 (CELU, 64-128-256-128 channels: `resnet9_rem`, resnet9_rem.py); this one stays
as it was, so keys that name it keep their meaning.

prep: conv3x3(w) BN ReLU; layer 1: conv3x3(2w) BN ReLU, max-pool 2, then a residual pair of conv3x3(2w) BN ReLU;
layer 2: conv3x3(4w) BN ReLU, max-pool 2; layer 3: conv3x3(8w) BN ReLU, max-pool 2, a residual pair; global max-pool
and a linear head (w = 64: 6.6M parameters). The stem is `prep` and the three layers are `Blocks.blocks`. With
`generalisation` < 1 every conv unit is followed by example-tied dropout (workloads/models/tied_dropout.py); the
reference's ETD variant keeps 50% of the channels for generalisation and gives each example 20% of the others.
Measured on the CPU machine (2 cores, torch 2.14, float32): width 64 at batch 512 is far too slow for a CPU (several
seconds a step); the tests' width 4 on 8x8 images takes a few milliseconds a step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workloads.models.base import Blocks, register_model
from workloads.models.tied_dropout import TiedDropoutOptions, check_options, tied_after


@dataclass
class ResNet9Config(TiedDropoutOptions):
    width: int = 64  # channels of the prep layer; the layers have 2x, 4x and 8x


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Units:
    """Builds conv-BN-ReLU units, each followed by its tied dropout layer (numbered in build order)."""

    def __init__(self, options: TiedDropoutOptions):
        self.options, self.count = options, 0

    def __call__(self, c_in: int, c_out: int, pool: bool = False) -> list[nn.Module]:
        unit = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        unit += tied_after(c_out, self.options, self.count) + ([nn.MaxPool2d(2)] if pool else [])
        self.count += 1
        return unit


@register_model("resnet9", ResNet9Config)
def resnet9(cfg: ResNet9Config, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3:
        raise ValueError(f"ResNet-9 takes images (C, H, W); this dataset's inputs have shape {tuple(input_shape)}")
    if cfg.width < 1:
        raise ValueError(f"model.args.width: must be at least 1, got {cfg.width}")
    check_options(cfg)
    w, unit = cfg.width, _Units(cfg)
    stem = nn.Sequential(*unit(input_shape[0], w))
    layer1 = nn.Sequential(
        *unit(w, 2 * w, pool=True), Residual(nn.Sequential(*unit(2 * w, 2 * w), *unit(2 * w, 2 * w)))
    )
    layer2 = nn.Sequential(*unit(2 * w, 4 * w, pool=True))
    layer3 = nn.Sequential(
        *unit(4 * w, 8 * w, pool=True), Residual(nn.Sequential(*unit(8 * w, 8 * w), *unit(8 * w, 8 * w)))
    )
    head = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes))
    return Blocks(stem, [layer1, layer2, layer3], head)
