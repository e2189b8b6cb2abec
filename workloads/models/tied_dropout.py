"""Example-tied dropout (Maini et al. 2023), the option every small model and ResNet-9 takes: after each hidden layer,
the first `generalisation` share of its channels is always on; the rest are memorisation channels. While training,
each example keeps its own fixed `memorisation` share of them (its mask, a function of the example's index in the
training set and the mask seed, so it is the same in every epoch and on every device); every other memorisation
channel is zeroed. At test time (eval mode), and in train mode whenever no example indices are given, every
memorisation channel is dropped: the model that is scored is the generalisation part alone. `drop_scale` says whether
drop mode rescales the always-on channels, and by what (DROP_SCALES; the reference does not: `drop_no_scaling=True`).

`generalisation: 1.0` (the default) adds no layer at all, so plain models keep their structure and checkpoints.
`generalisation: 0.5, memorisation: 0.0` is a half-capacity base model with dormant channels beside it: what REM
turns into memorisation capacity at unlearning time (workloads/methods/rem.py), and discards at inference.

Indices reach the layers through `tied_to(model, ids)` around a forward pass; `SHARED_EXAMPLE` is an index no
training example has, whose mask REM gives every discovered example at once. Measured on the CPU machine (2 cores,
shared): the masks of a batch of 128 over 64 memorisation channels take about 0.2 ms per layer and step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

SHARED_EXAMPLE = -1
# Drop mode's factor on the always-on channels. `none`: 1, the reference's (`drop_no_scaling = True` in src/config.py,
# used by `ExampleTiedDropout.forward` of src/methods.py in its "drop" branch). `kept_share`: (fixed + memorisation *
# spare) / fixed, the channels an example kept on average while training (this project's choice before; 1.2 at 50 % /
# 20 %). `reference_p_mem`: (generalisation + memorisation) / generalisation, the reference's branch with
# drop_no_scaling=False (1.4 at 50 % / 20 %; 1 when memorisation is 0 or 1).
DROP_SCALES = ("none", "kept_share", "reference_p_mem")
_PRIME = 2_147_483_647  # 2^31 - 1: products of two residues stay below 2^62, exact in int64


@dataclass
class TiedDropoutOptions:
    """The example-tied dropout fields of a model config (the defaults: a plain model)."""

    generalisation: float = 1.0  # share of each hidden layer's channels that is always on
    memorisation: float = 0.0  # share of the other channels each training example keeps while training
    mask_seed: int = 0
    # Hidden layers before this one (counting the first as 0) stay plain. On MNIST-1D's small CNN masks after every
    # layer cost half the test accuracy (49% against 87% plain, 30 epochs); after the last one alone, 82%.
    first_tied_layer: int = 0
    # DROP_SCALES. Model args enter content keys as written, so this default keeps what stored keys of the models
    # before it meant; the REM study's configs set `none`, the reference's.
    drop_scale: str = "kept_share"


def check_options(options: TiedDropoutOptions) -> None:
    if not 0 < options.generalisation <= 1:
        raise ValueError(f"model.args.generalisation: must be in (0, 1], got {options.generalisation}")
    if not 0 <= options.memorisation <= 1:
        raise ValueError(f"model.args.memorisation: must be in [0, 1], got {options.memorisation}")
    if options.first_tied_layer < 0:
        raise ValueError(f"model.args.first_tied_layer: must be >= 0, got {options.first_tied_layer}")
    if options.drop_scale not in DROP_SCALES:
        raise ValueError(f"model.args.drop_scale: must be one of {', '.join(DROP_SCALES)}, got {options.drop_scale!r}")


def drop_factor(options: TiedDropoutOptions, channels: int, fixed: int) -> float:
    """What drop mode multiplies the always-on channels by (DROP_SCALES)."""
    g, m = options.generalisation, options.memorisation
    if options.drop_scale == "kept_share":
        return (fixed + m * (channels - fixed)) / fixed
    if options.drop_scale == "reference_p_mem":
        return (g + m) / g if 0 < m < 1 else 1.0
    return 1.0


def _mix(x: torch.Tensor) -> torch.Tensor:
    for _ in range(3):  # xorshift and a multiplicative step, modulo a prime: no structure across channels or examples
        x = ((x ^ (x >> 7)) * 1_103_515_245 + 12_345) % _PRIME
    return x


def memorisation_masks(ids: torch.Tensor, channels: int, share: float, seed: int) -> torch.Tensor:
    """(len(ids), channels) booleans: which memorisation channels each example keeps, about `share` of them. A pure
    function of (id, channel, seed)."""
    channel = torch.arange(channels, device=ids.device)
    x = (ids.long().unsqueeze(1) % _PRIME) * 65_537 + channel.unsqueeze(0) * 2_654_435 + (seed % 65_536) * 97_003
    return _mix(x % _PRIME).float() / _PRIME < share


class ExampleTiedDropout(nn.Module):
    """Applied to a hidden layer's output (N, C, ...): channel mask per example (see the module docstring)."""

    def __init__(self, channels: int, options: TiedDropoutOptions, layer: int):
        super().__init__()
        self.channels, self.fixed = channels, max(1, round(options.generalisation * channels))
        self.share, self.seed = options.memorisation, options.mask_seed * 1_000 + layer
        self.drop_factor = drop_factor(options, channels, self.fixed)
        self.ids: Optional[torch.Tensor] = None  # set by tied_to for one forward pass
        self.share_override: Optional[float] = None

    @property
    def spare(self) -> int:
        return self.channels - self.fixed

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.spare == 0:
            return h
        share = self.share if self.share_override is None else self.share_override
        keep = torch.zeros(len(h), self.channels, dtype=h.dtype, device=h.device)
        if self.training and self.ids is not None and share > 0:
            keep[:, : self.fixed] = 1.0
            keep[:, self.fixed :] = memorisation_masks(self.ids.to(h.device), self.spare, share, self.seed).to(h.dtype)
        else:
            keep[:, : self.fixed] = self.drop_factor  # drop mode: memorisation channels off, fixed ones scaled
        return h * keep.view(len(h), self.channels, *[1] * (h.dim() - 2))


def tied_after(channels: int, options: TiedDropoutOptions, layer: int) -> list[nn.Module]:
    """The layer to append after a hidden layer of `channels`: none for a plain model."""
    return (
        []
        if options.generalisation >= 1 or layer < options.first_tied_layer
        else [ExampleTiedDropout(channels, options, layer)]
    )


def tied_layers(model: nn.Module) -> list[ExampleTiedDropout]:
    return [m for m in model.modules() if isinstance(m, ExampleTiedDropout)]


def spare_channels(model: nn.Module) -> int:
    """Memorisation channels over every tied layer: 0 for a plain model (nothing for REM to redirect into)."""
    return sum(layer.spare for layer in tied_layers(model))


@contextmanager
def tied_to(model: nn.Module, ids: Optional[torch.Tensor], share: Optional[float] = None) -> Iterator[None]:
    """Forward passes inside see these example indices (and, if given, this memorisation share instead of the
    model's own); outside, the layers drop every memorisation channel again."""
    layers = tied_layers(model)
    for layer in layers:
        layer.ids, layer.share_override = ids, share
    try:
        yield
    finally:
        for layer in layers:
            layer.ids, layer.share_override = None, None
