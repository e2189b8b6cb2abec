"""The small CPU models of the quickstart and the tests: `cnn1d` (strided 1-D convolutions, for MNIST-1D) and `mlp`.
Neither has batch-norm, so ensembles of them train vmapped (workloads/memorization.py). Both take example-tied
dropout (`generalisation`, `memorisation`: workloads/models/tied_dropout.py) after every hidden layer; by default
they are plain."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from workloads.models.base import Blocks, register_model
from workloads.models.tied_dropout import TiedDropoutOptions, check_options, tied_after


@dataclass
class CNN1DConfig(TiedDropoutOptions):
    channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    hidden: int = 256


@register_model("cnn1d", CNN1DConfig)
def cnn1d(cfg: CNN1DConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Strided 1D convolutions and an MLP head; no batch-norm, so ensembles of it vmap."""
    check_options(cfg)
    in_channels, length = input_shape
    stem = nn.Sequential(
        nn.Conv1d(in_channels, cfg.channels[0], 5, padding=2), nn.ReLU(), *tied_after(cfg.channels[0], cfg, 0)
    )
    blocks, width = [], cfg.channels[0]
    for i, out in enumerate(cfg.channels[1:], start=1):
        blocks.append(nn.Sequential(nn.Conv1d(width, out, 3, stride=2, padding=1), nn.ReLU(), *tied_after(out, cfg, i)))
        width, length = out, (length + 1) // 2
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(width * length, cfg.hidden),
        nn.ReLU(),
        *tied_after(cfg.hidden, cfg, len(cfg.channels)),
        nn.Linear(cfg.hidden, num_classes),
    )
    return Blocks(stem, blocks, head)


@dataclass
class MLPConfig(TiedDropoutOptions):
    hidden: list[int] = field(default_factory=lambda: [256, 256])


@register_model("mlp", MLPConfig)
def mlp(cfg: MLPConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    check_options(cfg)
    width = 1
    for d in input_shape:
        width *= d
    stem = nn.Sequential(nn.Flatten(), nn.Linear(width, cfg.hidden[0]), nn.ReLU(), *tied_after(cfg.hidden[0], cfg, 0))
    blocks = [
        nn.Sequential(nn.Linear(a, b), nn.ReLU(), *tied_after(b, cfg, i))
        for i, (a, b) in enumerate(zip(cfg.hidden, cfg.hidden[1:]), start=1)
    ]
    return Blocks(stem, blocks, nn.Linear(cfg.hidden[-1], num_classes))
