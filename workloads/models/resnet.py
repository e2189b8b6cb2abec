"""CIFAR ResNet-18 and ResNet-34 as the reference study builds them, registered as `resnet18` and `resnet34`.

The 32x32 variant: a 3x3 stride-1 stem convolution with batch-norm and ReLU and no max-pool, four stages of basic
blocks ([2, 2, 2, 2] or [3, 4, 6, 3]) of width w, 2w, 4w, 8w (w = 64 by default) where each stage after the first
halves the resolution in its first block, then global average pooling and a linear head. Every residual block is
one entry of `Blocks.blocks`, so with return_hidden=True hidden[0] is the stem (w x 32 x 32) and hidden[i] the
output of residual block i: ResNet-18 has 8 (the study's representation losses read layers 4 and 7), ResNet-34 16.
Initialisation is PyTorch's default, as in the reference.

Measured on this project's CPU machine (CPU, 2 cores, torch 2.15, float32, train mode, nothing else running): one
forward+backward of ResNet-18 (width 64, 11.2M parameters) at batch 128 on 32x32 inputs takes about 1.75 s
(1.6-1.9 s over repeats), so one CIFAR epoch of 391 steps about 11 minutes; ResNet-34 (21.3M) about 3.1 s; the tests'
width-8 ResNet-18 about 0.08 s. Another process competing for the two cores makes these 2-4x slower. Real CIFAR
runs want a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workloads.models.base import Blocks, register_model


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (identity, or 1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        if stride != 1 or in_channels != channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def cifar_resnet(blocks_per_stage: list[int], width: int, in_channels: int, num_classes: int) -> Blocks:
    stem = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
    )
    blocks: list[nn.Module] = []
    channels = width
    for stage, count in enumerate(blocks_per_stage):
        out = width * 2**stage
        for i in range(count):
            blocks.append(BasicBlock(channels, out, stride=2 if stage > 0 and i == 0 else 1))
            channels = out
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
    return Blocks(stem, blocks, head)


@dataclass
class ResNetConfig:
    width: int = 64  # channels of the stem and first stage; stages have width, 2x, 4x, 8x


def _check(cfg: ResNetConfig, input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 3:
        raise ValueError(f"a ResNet takes images (C, H, W); this dataset's inputs have shape {tuple(input_shape)}")
    if cfg.width < 1:
        raise ValueError(f"model.args.width: must be at least 1, got {cfg.width}")
    return input_shape[0]


@register_model("resnet18", ResNetConfig)
def resnet18(cfg: ResNetConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return cifar_resnet([2, 2, 2, 2], cfg.width, _check(cfg, input_shape), num_classes)


@register_model("resnet34", ResNetConfig)
def resnet34(cfg: ResNetConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return cifar_resnet([3, 4, 6, 3], cfg.width, _check(cfg, input_shape), num_classes)
