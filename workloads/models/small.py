"""The small CPU models of the quickstart and the tests: `cnn1d` (strided 1-D convolutions, for MNIST-1D) and `mlp`.
Neither has batch-norm, so ensembles of them train vmapped (workloads/memorization.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from workloads.models.base import Blocks, register_model


@dataclass
class CNN1DConfig:
    channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    hidden: int = 256


@register_model("cnn1d", CNN1DConfig)
def cnn1d(cfg: CNN1DConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Strided 1D convolutions and an MLP head; no batch-norm, so ensembles of it vmap."""
    in_channels, length = input_shape
    stem = nn.Sequential(nn.Conv1d(in_channels, cfg.channels[0], 5, padding=2), nn.ReLU())
    blocks, width = [], cfg.channels[0]
    for out in cfg.channels[1:]:
        blocks.append(nn.Sequential(nn.Conv1d(width, out, 3, stride=2, padding=1), nn.ReLU()))
        width, length = out, (length + 1) // 2
    head = nn.Sequential(nn.Flatten(), nn.Linear(width * length, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, num_classes))
    return Blocks(stem, blocks, head)


@dataclass
class MLPConfig:
    hidden: list[int] = field(default_factory=lambda: [256, 256])


@register_model("mlp", MLPConfig)
def mlp(cfg: MLPConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    width = 1
    for d in input_shape:
        width *= d
    stem = nn.Sequential(nn.Flatten(), nn.Linear(width, cfg.hidden[0]), nn.ReLU())
    blocks = [nn.Sequential(nn.Linear(a, b), nn.ReLU()) for a, b in zip(cfg.hidden, cfg.hidden[1:])]
    return Blocks(stem, blocks, nn.Linear(cfg.hidden[-1], num_classes))
